#!/usr/bin/env python3
"""VizWiz-VQA parity fixtures (Tests/Fixtures/eval/vizwiz_*.json) from the VizWiz challenge's own
evaluation class.

The reference is the `VQAEval` class of the VizWiz VQA Python API ("written by Qing Li for VizWiz
Python API", the evaluation example of https://vizwiz.org/tasks-and-datasets/vqa/). It is not on
PyPI and is NOT vendored here: pass the directory holding a copy as `vizwiz_eval.py` with
--vizwiz-eval-dir. Only `evaluate` (accuracy) and `evaluate_unanswerability` (sklearn's average
precision and F1) are used; the caption metrics `evaluate` also computes of the answers need Java
and METEOR and are not part of VQA accuracy (cut from the copy or stubbed). The annotation and
result index it reads (`vqa.imgToQA`, `vqa.getImgs()`, `vqaRes.imgToQA`) is built below as the
API's VQA class builds it (keyed by image, in file order).

Run: /work/benchvenv/bin/python scripts/reference/vizwiz_reference.py --vizwiz-eval-dir DIR
(needs numpy and scikit-learn; versions in requirements.txt).
"""
import argparse
import json
import os
import random
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "eval")

VOCAB = ["unanswerable", "yes", "no", "2", "two", "red", "blue", "coca cola", "the bottle", "bottle", "dont know",
         "1,000", "3.5", "soup", "a can of soup", "keyboard", "Keyboard", "grey", "gray", "tv remote", "remote"]
VARIANTS = [lambda a: a, lambda a: a.upper(), lambda a: a + ".", lambda a: "The " + a, lambda a: a.replace(" ", "-"),
            lambda a: " " + a + " \n", lambda a: a + "!", lambda a: "\t" + a, lambda a: "(" + a + ")",
            lambda a: a.replace("2", "two"), lambda a: a.replace("two", "2"), lambda a: a + "?", lambda a: a + " don't",
            lambda a: "an " + a, lambda a: a + ", " + a, lambda a: a + "; " + a]


class Index:
    """The API's `imgToQA` index and `getImgs()` (file order)."""
    def __init__(self, rows):
        self.imgToQA = {r["image"]: r for r in rows}
        self.order = [r["image"] for r in rows]

    def getImgs(self):
        return list(self.order)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vizwiz-eval-dir", required=True, help="directory holding the VizWiz API's VQAEval class as vizwiz_eval.py")
    args = ap.parse_args()
    sys.path.insert(0, args.vizwiz_eval_dir)
    from vizwiz_eval import VQAEval
    rng = random.Random(3)
    annotations = []
    for i in range(40):
        main_answer = "unanswerable" if rng.random() < 0.25 else rng.choice(VOCAB)
        answers = [main_answer if rng.random() < 0.6 else rng.choice(VOCAB) for _ in range(10)]
        unanswerable = answers.count("unanswerable") >= 5
        kind = "unanswerable" if unanswerable else ("yes/no" if main_answer in ("yes", "no") else
                                                   "number" if main_answer in ("2", "two", "1,000", "3.5") else "other")
        annotations.append({"image": "VizWiz_val_%08d.jpg" % i, "question": "What is this %d?" % i,
                            "answers": [{"answer": a, "answer_confidence": rng.choice(["yes", "maybe", "no"])} for a in answers],
                            "answer_type": kind, "answerable": 0 if unanswerable else 1})
    predictions = []
    for a in annotations:
        base = rng.choice([x["answer"] for x in a["answers"]]) if rng.random() < 0.8 else rng.choice(VOCAB)
        predictions.append({"image": a["image"], "answer": rng.choice(VARIANTS)(base)})
    # A second results file with answerability scores (ties included), for the ranking.
    scored = [dict(p, answerable=rng.choice([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])) for p in predictions]

    def run(preds, derive):
        rows = [dict(p) for p in preds]
        if derive:  # the rule for a model without a score: 0 when its answer normalises to "unanswerable"
            e = VQAEval(Index(annotations), Index(rows))
            for r in rows:
                r["answerable"] = 0.0 if e.processDigitArticle(e.processPunctuation(r["answer"].replace("\n", " ").replace("\t", " ").strip())) == "unanswerable" else 1.0
        e = VQAEval(Index(annotations), Index(rows))
        e.evaluate()
        e.evaluate_unanswerability()
        return {"accuracy": e.accuracy, "evalQA": e.evalQA, "unanswerability": e.unanswerability,
                "answerable": [r["answerable"] for r in rows]}

    e = VQAEval(Index(annotations), Index(predictions))
    cases = ["Dont know.", "it's 1,000!", "the {red} one", "a-b-c", "x - y", "(two)", "3.5 oz.", "Wheres it?",
             "weve got; it", "a/b", "@home", "back\\slash", "under_score", "why?!", "end.", "Mr. Smith", "none",
             "ten dogs", "isnt", "its: fine", "'quoted'", "...", "a.b.c", "1.5.2", "e.g.", " spaced \t out \n"]
    normalization = [{"text": t, "normalized": e.processDigitArticle(e.processPunctuation(t.replace("\n", " ").replace("\t", " ").strip()))}
                     for t in cases]
    with open(os.path.join(OUT, "vizwiz_annotations.json"), "w") as f:
        json.dump(annotations, f, indent=1)
    with open(os.path.join(OUT, "vizwiz_predictions.json"), "w") as f:
        json.dump(predictions, f, indent=1)
    with open(os.path.join(OUT, "vizwiz_predictions_scored.json"), "w") as f:
        json.dump(scored, f, indent=1)
    expected = {"derived": run(predictions, True), "scored": run(scored, False), "normalization": normalization}
    with open(os.path.join(OUT, "vizwiz_expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    print(expected["derived"]["accuracy"], expected["derived"]["unanswerability"], expected["scored"]["unanswerability"])


if __name__ == "__main__":
    main()
