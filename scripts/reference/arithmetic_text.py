"""A small text corpus written here (so free of any licence): English sentences of additions and
subtractions of numbers 0-99 in words, e.g. "twelve plus seven is nineteen." The quantization
quality measurement (docs/benchmarks.md) trains a small text model on the training split and
reports perplexity on the held-out split (pairs never seen in training).

Run: python3 scripts/reference/arithmetic_text.py OUT_DIR   (writes train.jsonl, heldout.jsonl)
"""
import json
import random
import sys

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def words(n):
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("" if ones == 0 else "-" + ONES[ones])


def sentence(a, b, op):
    if op == "+":
        return f"{words(a)} plus {words(b)} is {words(a + b)}."
    return f"{words(a)} minus {words(b)} is {words(a - b)}."


def main():
    out = sys.argv[1]
    pairs = [(a, b, op) for a in range(100) for b in range(100) for op in "+-" if (op == "+" and a + b < 100) or (op == "-" and a >= b)]
    rng = random.Random(23)
    rng.shuffle(pairs)
    heldout, train = pairs[:500], pairs[500:]
    for name, items in (("train", train), ("heldout", heldout)):
        with open(f"{out}/{name}.jsonl", "w") as f:
            for a, b, op in items:
                f.write(json.dumps({"text": sentence(a, b, op)}) + "\n")
    print(f"{len(train)} training and {len(heldout)} held-out sentences in {out}")


if __name__ == "__main__":
    main()
