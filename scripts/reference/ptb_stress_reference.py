#!/usr/bin/env python3
"""A punctuation stress set for the caption tokenizer (Tests/Fixtures/eval/ptb_stress.json):
pycocoevalcap's PTBTokenizer (the Stanford CoreNLP 3.4.1 jar it ships, run by `java`: Debian's
default-jre) on captions built from every combination of a few words with runs of periods,
ellipses, dashes, quotes and brackets, at the end, in the middle and at the start.

Run: venv/bin/python scripts/reference/ptb_stress_reference.py   (pip: pycocoevalcap)

pycocoevalcap tokenizes all captions of a set in one jar run, one caption per line, and the jar
decides some end-of-line periods by the next line; as in a COCO set every caption here is followed
by one that starts with a capital letter ("A dog."), which is the case `CaptionTokenizer` assumes.
"""
import itertools
import json
import os

from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))

RUNS = ["..", "...", "....", ".....", ". .", ". . .", "!!", "?!", "!?", "?..", "!..", ".?", "..!", ",,", ";;", "::",
        "--", "---", "—", "–", "—-", "…", "……", ".…", "'", "''", "'''", '"', '""', "``", "`", "“", "”", "‘", "’",
        "(", ")", "()", "[", "]", "{", "}", "(.)", "(...)", "..)", ").", ".)", "'.", ".'", '."', '".', "?'", "!'",
        ".-", "-.", "...-", "-...", ". -", "- ."]
PLACES = ["red{r}", "red{r} car", "{r}red car", "red {r} car", "red {r}", "{r} red", "the x{r}", "the A{r}",
          "dogs{r} cats", "3{r}5", "U.S{r}", "red{r}{r}"]


def main():
    cases = []
    seen = set()
    for run, place in itertools.product(RUNS, PLACES):
        text = "A " + place.format(r=run)
        if text not in seen:
            seen.add(text)
            cases.append(text)
    batch = {}
    for i, c in enumerate(cases):
        batch[2 * i] = [{"caption": c}]
        batch[2 * i + 1] = [{"caption": "A dog."}]
    tokenized = PTBTokenizer().tokenize(batch)
    out = [{"input": c, "expected": tokenized[2 * i][0]} for i, c in enumerate(cases)]
    path = os.path.join(ROOT, "Tests", "Fixtures", "eval", "ptb_stress.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print(len(out), "cases ->", path)


if __name__ == "__main__":
    main()
