#!/usr/bin/env python3
"""Python tokenizer encoding speed, to compare with `kosmos bench tokenize`.

  tokenizer_bench.py --make-corpus FILE [--mb 20]     write a mixed-script text file
  tokenizer_bench.py --tokenizer PATH FILE [--repeats 3]

Encodes FILE line by line (split on "\\n", as the Swift benchmark does) and prints MB/s for:
sentencepiece single-threaded (one encode call per line), sentencepiece batched (its own
thread pool, num_threads=-1), and, for tokenizer.json, tokenizers' encode_batch.
"""
import argparse, os, random, sys, time


def make_corpus(path, mb):
    rng = random.Random(7)
    words = ("the quick brown fox jumps over the lazy dog while a kosmos model describes an image "
             "with grounded phrases and objects in many languages").split()
    extra = ["café", "naïve", "東京", "日本語", "مرحبا", "😀", "１２３", "über", "straße", "2024", "3.14"]
    target = int(mb * 1e6)
    with open(path, "w", encoding="utf-8") as f:
        n = 0
        while n < target:
            line = " ".join(rng.choice(extra) if rng.random() < 0.08 else rng.choice(words)
                            for _ in range(rng.randint(5, 40)))
            line = line[0].upper() + line[1:] + "."
            f.write(line + "\n")
            n += len(line.encode()) + 1


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--tokenizer")
    ap.add_argument("--make-corpus", action="store_true")
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.make_corpus:
        make_corpus(a.file, a.mb)
        print(f"wrote {os.path.getsize(a.file)} bytes to {a.file}")
        return
    if not a.tokenizer:
        sys.exit("--tokenizer is required")
    data = open(a.file, "rb").read()
    lines = data.decode("utf-8").split("\n")
    mb = len(data) / 1e6
    name = os.path.basename(a.tokenizer)
    if a.tokenizer.endswith(".json"):
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(a.tokenizer)
        t = best(lambda: [tok.encode(l, add_special_tokens=False) for l in lines], a.repeats)
        print(f"{name}: tokenizers encode per line: {mb / t:.2f} MB/s")
        t = best(lambda: tok.encode_batch(lines, add_special_tokens=False), a.repeats)
        print(f"{name}: tokenizers encode_batch (all cores): {mb / t:.2f} MB/s")
    else:
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
        t = best(lambda: [sp.encode(l) for l in lines], a.repeats)
        print(f"{name}: sentencepiece encode per line (1 thread): {mb / t:.2f} MB/s")
        t = best(lambda: sp.encode(lines, num_threads=1), a.repeats)
        print(f"{name}: sentencepiece encode(list, num_threads=1): {mb / t:.2f} MB/s")
        t = best(lambda: sp.encode(lines), a.repeats)
        print(f"{name}: sentencepiece encode(list) default threads ({os.cpu_count()} cores): {mb / t:.2f} MB/s")


if __name__ == "__main__":
    main()
