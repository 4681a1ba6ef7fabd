#!/usr/bin/env python3
"""Builds the byte-level BPE parity fixtures for KosmosTokenizers (issue 20: Kosmos-2.5's
tokenizer.json is a byte-level BPE behind a GPT-style Split regex).

Trains a small byte-level BPE with the `tokenizers` library on generated text, laid out as
Kosmos-2.5's file is (Split with a cl100k-style regex, Isolated; ByteLevel without its own regex;
ByteLevel decoder; BPE with ignore_merges; <ocr>, <md>, <image>, </image> added after the
vocabulary), and records the library's ids and decoded text for a stress corpus, for that layout
and for variants of its pre-tokenizer (GPT-2's ByteLevel regex with a prefix space, and each Split
behaviour). Output: Tests/Fixtures/tokenizers/bytelevel.tokenizer.json and bytelevel_parity.json.

Usage: venv/bin/python scripts/reference/bytelevel_reference.py [OUT_DIR]
Needs: pip install tokenizers (requirements.txt pins the version used)
"""
import base64, json, os, random, sys

from tokenizers import Tokenizer, AddedToken, Regex, decoders, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")
os.makedirs(OUT, exist_ok=True)
rng = random.Random(2025)

# cl100k_base's split pattern (tiktoken), as GPT-style tokenizer.json files carry it.
CL100K = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = ("the quick brown fox jumps over lazy dog page document table heading invoice total "
         "receipt markdown line text box column row figure caption reading order kosmos").split()
OTHER = ["café", "naïve", "straße", "Ångström", "東京", "日本語", "한국어", "مرحبا", "שלום", "😀", "👍🏽",
         "👨‍👩‍👧‍👦", "ＡＢＣ", "①②", "ﬁ"]
PUNCT = [",", ".", ";", ":", "!", "?", "(", ")", "[", "]", "{", "}", "#", "##", "**", "-", "—", "$", "%", "'s",
         "'LL", "'Re", "n't", "\"", "/", "\\", "|", "...", "<", ">"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\u3000", "\u00a0", "\x0b", "\x0c", "\x85",
          "\u2028", "\u2003"]


def sentence():
    parts = []
    for _ in range(rng.randint(3, 16)):
        r = rng.random()
        if r < 0.55: parts.append(rng.choice(WORDS) if rng.random() < 0.7 else rng.choice(WORDS).capitalize())
        elif r < 0.70: parts.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
        elif r < 0.82: parts.append(rng.choice(PUNCT))
        else: parts.append(rng.choice(OTHER))
        parts.append(rng.choice(SPACES) if rng.random() < 0.2 else (" " if rng.random() < 0.85 else ""))
    return "".join(parts)


def stress_corpus(n=300):
    fixed = ["", " ", "  ", "\t", "\n", " \n ", "\r\n\r\n", "hello", " hello", "hello ", "  hello   world  ",
             "Hello, World!", "I'm here, you're there; it's HIS and they'LL go. We'VE", "don't won't can't",
             "1234567890", "12 345 6789 3.14159 2,718 1e10 0x1F", "a" * 300, "café naïve", "東京は日本の首都です。",
             "مرحبا بالعالم", "😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈", "e\u0301\u0301", "ＡＢＣ１２３", "\x00\x01\x1b[0m",
             "tab\tseparated\tvalues", "line1\nline2\r\nline3", "vertical\x0btab form\x0cfeed next\x85line",
             "line\u2028separator em\u2003space", "nbsp\u00a0here\u3000ideographic", "trailing   ", "   leading",
             "# Heading\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", "**bold** _it_ `code` [link](http://x.y/z?q=1)",
             "<ocr>", "<md>", "<image></image>", "<md># Title</md>", "x<ocr>y<image>z</image>",
             "!!!???...,,,", "$12.50 (USD) — 20% off!", "\\n is not a newline", "'''", "' s", "''s"]
    out = list(fixed)
    while len(out) < n:
        s = sentence()
        if rng.random() < 0.15: s = rng.choice(SPACES) + s
        if rng.random() < 0.1: s = s + rng.choice(["<ocr>", "<md>", "<image>", "</image>"]) + sentence()
        out.append(s)
    return out[:n]


def build():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CL100K), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([sentence() for _ in range(4000)], trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ["<ocr>", "<md>", "<image>", "</image>"]])
    return tok


def b64(s):
    return base64.b64encode(s.encode("utf-8")).decode("ascii")


def variants(base_json):
    """name -> the tokenizer.json's pre_tokenizer replaced (the Swift test makes the same edit)."""
    def split(behavior, pattern, invert=False):
        return {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    space = {"String": " "}
    return {
        "cl100k_isolated": None,  # the file as written
        "gpt2_bytelevel": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "split_removed": split("Removed", space),
        "split_merged_previous": split("MergedWithPrevious", space),
        "split_merged_next": split("MergedWithNext", space),
        "split_contiguous": split("Contiguous", {"Regex": r"\s"}),
        "split_isolated_inverted": split("Isolated", {"Regex": r"\p{N}+"}, invert=True),
    }


def main():
    tok = build()
    path = os.path.join(OUT, "bytelevel.tokenizer.json")
    tok.save(path)
    base = json.loads(open(path, encoding="utf-8").read())
    corpus = stress_corpus()
    cases = {"strings_b64": [b64(s) for s in corpus], "models": {}}
    for name, pre in variants(base).items():
        j = dict(base)
        if pre is not None: j["pre_tokenizer"] = pre
        t = Tokenizer.from_str(json.dumps(j))
        ids = [t.encode(s, add_special_tokens=False).ids for s in corpus]
        decoded = [t.decode(i, skip_special_tokens=False) for i in ids]
        cases["models"][name] = {"pre_tokenizer": pre, "ids": ids,
                                 "decoded_b64": [None if d == s else b64(d) for d, s in zip(decoded, corpus)],
                                 "vocab_size": t.get_vocab_size()}
    with open(os.path.join(OUT, "bytelevel_parity.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))
    for fn in ["bytelevel.tokenizer.json", "bytelevel_parity.json"]:
        print(f"{os.path.getsize(os.path.join(OUT, fn)):>9}  {fn}")


if __name__ == "__main__":
    main()
