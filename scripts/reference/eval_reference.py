#!/usr/bin/env python3
"""Generate the KosmosEval parity fixtures (Tests/Fixtures/eval/) from the reference tools.

Captions: pycocoevalcap (PyPI) — pycocotools' COCO/loadRes for image selection, its PTBTokenizer
(Stanford CoreNLP 3.4.1 jar, needs `java`), and its Bleu(4) / Rouge / Cider scorers, called the
way pycocoevalcap.eval.COCOEvalCap.evaluate calls them (METEOR and SPICE are skipped: they need
extra Java downloads and are not implemented in Swift).

VQA: the official evaluation `vqaEval.py` from GT-Vision-Lab/VQA (PythonEvaluationTools/
vqaEvaluation/vqaEval.py). It is not on PyPI and is NOT vendored here: pass the directory that
holds a copy with --vqa-eval-dir (its Python 2 `print` statements must be made print() calls to run
under Python 3; nothing else changed). The annotation/result index it reads (`vqa.qa`,
`vqaRes.qa`, `vqaRes.getQuesIds()`) is built by `_VQAIndex` below exactly as vqa.py's
`createIndex` / `loadRes` do (last entry per question id wins; ids listed in file order).

Setup:  python3 -m venv /work/venv-eval && /work/venv-eval/bin/pip install pycocoevalcap
Run:    /work/venv-eval/bin/python scripts/reference/eval_reference.py --vqa-eval-dir /tmp/vqaref/vqaEvaluation
"""
import argparse
import json
import os
import random
import sys
import tempfile

from pycocotools.coco import COCO
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.cider.cider import Cider

SUBJECTS = ["a man", "A woman", "two dogs", "the cat", "a group of people", "A young boy", "an old man's dog",
            "3 children", "a 50-year-old man", "Two giraffes", "a well-known chef", "people", "a café owner",
            "the U.S. team", "Mr. Smith", "a black-and-white cat", "1,000 birds", "a ＦＵＬＬ width sign",
            "dogs'", "a naïve tourist"]
VERBS = ["is standing", "are sitting", "isn't running", "is eating", "can't find", "they're holding", "is riding",
         "won't leave", "is looking at", "sits on", "is playing with", "stands near", "cannot see", "is gonna eat",
         "it's next to", "I'm watching", "we'll visit", "walks by"]
OBJECTS = ["a red bus", "the beach", "a pizza (with cheese)", "a frisbee", "the 3.5 ft wall", "a $5 bill",
           "50% of the cake", "an e-mail @ home", "a \"stop\" sign", "'the' ball", "a table [wooden]",
           "the park {left}", "a <b> tag", "two laptops", "a dog-friendly park", "the 1.5.2 version",
           "a 3/4 cup", "x/y and a+b = c on a board",  # a caption-final lower-case initial ("= c.") is not matchable per caption, see CaptionTokenizer
           "the o'clock tower", "rock 'n' roll records", "the résumé",
           "a über car", "ß straße", "the 5:30 p.m. train", "the N.Y.C. subway", "a table"]
ENDINGS = ["", ".", "!", "...", "?", " — outside.", " -- again", ", really.", "!!!", " ;", ": yes", " 😀", "  ",
           " in the rain", " at night."]


def sentence(rng):
    s = "%s %s %s%s" % (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(ENDINGS))
    if rng.random() < 0.15:
        s = s.replace(" ", "  ", 1)
    if rng.random() < 0.05:
        s = s.replace(" ", "\n", 1)
    if rng.random() < 0.1:
        s = s.upper()
    return s


TOKENIZER_CASES = [
    "A man's dog isn't running.", "They're here, aren't they?", "a well-known dog-friendly park",
    "1,000 people and 3.5 dogs", "He said \"hello\" to 'them'", "a cat (black) [big] {odd}", "wait... what...",
    "Café naïve résumé — über", "", "   ", "...", "It's 5:30 p.m. in the U.S.", "cannot gonna wanna",
    "dogs' bowls", "a $5 bill & 50% off", "e-mail @ home #1", "ＦＵＬＬ width", "emoji 😀 here", "A--B",
    "can't won't shan't", "'tis 'twas", "x/y and a+b = c", "3/4 cup", "don’t curly ’quotes’ “double”",
    "Mr. Smith St. Louis", "the end.", "a  b\tc", "1.5.2 version", "L'amour d'été", "N.Y.C. rocks",
    "hello!!! ??", "a <b> c", "o'clock ma'am", "I'm we'll you'd", "rock 'n' roll", "50-year-old man",
    "ÀÉÎ uppercase", "ß straße", "İstanbul", "A DOG, A CAT; AND: A BIRD!", "the dog. the cat",
    "a man in a hat.", "two (2) dogs", "she's 5'10\" tall", "the 1990s' style", "a.b", "hi-- there",
    "$ 100", "100$", "a/b/c", "well...", "multi\nline caption", "he said: \"go!\"", "first-class, 2nd-rate",
    "x c. The dog", "x c. the dog", "see J. Smith", "c... a", "100$ a", "Two+Three", "A&b", "AB+CD", "a&b", "AT&T",
    "A MAN ISN'T HERE", "'TIS TRUE", "don't go", "he's 6'2\" tall", "tabs\tand  spaces",
]


def captions(rng, out_dir):
    n_images = 240
    image_ids = rng.sample(range(1, 10 ** 6), n_images)
    images = [{"id": i, "file_name": "%012d.jpg" % i} for i in image_ids]
    anns, preds = [], []
    ann_id = 1
    for idx, img in enumerate(image_ids):
        refs = [sentence(rng) for _ in range(rng.randint(3, 6))]
        for r in refs:
            anns.append({"id": ann_id, "image_id": img, "caption": r})
            ann_id += 1
        if idx >= 220:  # 20 annotated images get no prediction: not scored (pycocoevalcap scores result images only)
            continue
        kind = idx % 20
        if kind == 0:
            p = ""
        elif kind == 1:
            p = " ".join(sentence(rng) for _ in range(40))  # very long
        elif kind == 2:
            p = refs[0]
        elif kind in (3, 4, 5, 6, 7, 8):
            words = refs[rng.randrange(len(refs))].split(" ")
            rng.shuffle(words) if kind == 3 else None
            p = " ".join(words[: max(1, len(words) - rng.randint(0, 3))])
        elif kind == 9:
            p = "..."
        else:
            p = sentence(rng)
        preds.append({"image_id": img, "caption": p})
    rng.shuffle(preds)
    ann_json = {"info": {}, "licenses": [], "type": "captions", "images": images, "annotations": anns}
    ann_path = os.path.join(out_dir, "captions_annotations.json")
    pred_path = os.path.join(out_dir, "captions_predictions.json")
    with open(ann_path, "w") as f:
        json.dump(ann_json, f, ensure_ascii=False, indent=0)
    with open(pred_path, "w") as f:
        json.dump(preds, f, ensure_ascii=False, indent=0)

    coco = COCO(ann_path)
    coco_res = coco.loadRes(pred_path)
    img_ids = coco_res.getImgIds()  # as pycocoevalcap's example: params['image_id'] = cocoRes.getImgIds()
    gts = {i: coco.imgToAnns[i] for i in img_ids}
    res = {i: coco_res.imgToAnns[i] for i in img_ids}
    tok = PTBTokenizer()
    gts_t = tok.tokenize(gts)
    res_t = tok.tokenize(res)
    expected = {"overall": {}, "per_image": {str(i): {} for i in gts_t.keys()},
                "image_order": list(gts_t.keys()),
                "tokenized": {"gts": {str(k): v for k, v in gts_t.items()}, "res": {str(k): v for k, v in res_t.items()}}}
    for scorer, names in [(Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]), (Rouge(), ["ROUGE_L"]), (Cider(), ["CIDEr"])]:
        score, scores = scorer.compute_score(gts_t, res_t) if not isinstance(scorer, Bleu) else scorer.compute_score(gts_t, res_t, verbose=0)
        if len(names) == 1:
            score, scores = [score], [scores]
        for name, sc, scs in zip(names, score, scores):
            expected["overall"][name] = float(sc)
            for i, s in zip(gts_t.keys(), scs):
                expected["per_image"][str(i)][name] = float(s)
    with open(os.path.join(out_dir, "captions_expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=0)

    cases = {i: [{"caption": c}] for i, c in enumerate(TOKENIZER_CASES)}
    toks = tok.tokenize(cases)
    with open(os.path.join(out_dir, "tokenizer_cases.json"), "w") as f:
        json.dump([{"input": c, "expected": toks[i][0]} for i, c in enumerate(TOKENIZER_CASES)], f, ensure_ascii=False, indent=1)
    print("captions:", expected["overall"])


ANSWER_POOLS = {
    "number": ["2", "two", "Two", "2.", " two ", "3", "three", "1,000", "1000", "10", "ten", "none", "0", "zero",
               "2 ", "one", "1", "3.5", "3 .", "twenty"],
    "yes/no": ["yes", "Yes", "yes!", "no", "No.", "nope", "yes.", "YES", "no,", "yes ?"],
    "other": ["a dog", "the dog", "dog", "dogs", "red/blue", "red blue", "t-shirt", "(left)", "50%",
              "black & white", "don't", "dont", "it's", "its", "3.5 ft", "man's", "men", "left side", "U.S.",
              "u.s.", "N/A", "café", "up;down", "hi_there", "a+b", "x=y", "<none>", "@home", "`tick`", "what?",
              "yes, sir", "1,2,3", "e.g.", "...", "an apple", "apple", "wheres", "whats", "youre", "ivory",
              "st. louis", "a.b.c", "tennis racket", "tennis  racket", "[blue]", "\"quoted\"", "back\\slash",
              "İstanbul", "٣ cats", "1,5", "the end .", "ten dogs", "a/b/c", "mr. t", "I'm"],
}
QUESTION_TYPES = {"number": ["how many", "what number is"], "yes/no": ["is the", "are there", "does this"],
                  "other": ["what color is the", "what is the", "where is the", "what sport is", "none of the above"]}


class _VQAIndex:
    """vqa.py's index, as createIndex/loadRes build it: `qa` keeps the last annotation per id,
    getQuesIds() lists the ids of all annotations (results) in file order."""

    def __init__(self, anns):
        self.anns = anns
        self.qa = {}
        for a in anns:
            self.qa[a["question_id"]] = a

    def getQuesIds(self):
        return [a["question_id"] for a in self.anns]


def vqa(rng, out_dir, vqa_eval_dir):
    sys.path.insert(0, vqa_eval_dir)
    from vqaEval import VQAEval  # the original GT-Vision-Lab/VQA file

    n_q = 230
    questions, anns, preds = [], [], []
    qids = rng.sample(range(1, 10 ** 7), n_q)
    for k, qid in enumerate(qids):
        atype = ["number", "yes/no", "other"][k % 3]
        pool = ANSWER_POOLS[atype]
        img = rng.randint(1, 10 ** 6)
        qtype = rng.choice(QUESTION_TYPES[atype])
        questions.append({"image_id": img, "question": qtype + " ...?", "question_id": qid})
        if k % 17 == 0:
            answers = [rng.choice(pool)] * 10  # all identical: the reference skips punctuation processing
        else:
            core = rng.sample(pool, rng.randint(1, 4))
            answers = [rng.choice(core) for _ in range(10)]
        anns.append({"question_id": qid, "image_id": img, "question_type": qtype, "answer_type": atype,
                     "multiple_choice_answer": answers[0],
                     "answers": [{"answer": a, "answer_confidence": rng.choice(["yes", "maybe", "no"]), "answer_id": j + 1}
                                 for j, a in enumerate(answers)]})
        if k >= 215:  # 15 questions without a prediction: not scored
            continue
        r = rng.random()
        if k % 29 == 0:
            p = ""
        elif k % 31 == 0:
            p = " ".join(rng.choice(pool) for _ in range(120))  # very long
        elif r < 0.55:
            p = rng.choice(answers)
        elif r < 0.7:
            p = rng.choice(pool)
        else:
            p = rng.choice(["  Two\n", "TWO", "the two", "an apple", "ten.", "yes\t", "Dont", "it is", "٣",
                            "3.", "1,000.", "The Dog", "a dog.", "red / blue", "(left)", "whats", "I'm", "im"])
        preds.append({"question_id": qid, "answer": p})
    rng.shuffle(preds)
    preds.append(dict(preds[3]))  # one duplicate entry: the reference scores it twice
    qjson = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, "data_subtype": "val2014",
             "questions": questions}
    ajson = {"info": {}, "license": {}, "data_subtype": "val2014", "data_type": "mscoco", "annotations": anns}
    for name, obj in [("vqa_questions.json", qjson), ("vqa_annotations.json", ajson), ("vqa_predictions.json", preds)]:
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(obj, f, ensure_ascii=False, indent=0)

    def run(n):
        # fresh copies: the reference rewrites ground-truth answers in place
        a = json.load(open(os.path.join(out_dir, "vqa_annotations.json")))["annotations"]
        p = json.load(open(os.path.join(out_dir, "vqa_predictions.json")))
        ev = VQAEval(_VQAIndex(a), _VQAIndex(p), n=n)
        ev.evaluate()
        return ev

    fine = run(12)
    reported = run(2)
    expected = {"overall": fine.accuracy["overall"], "perQuestionType": fine.accuracy["perQuestionType"],
                "perAnswerType": fine.accuracy["perAnswerType"],
                "reported": reported.accuracy,
                "evalQA_last_leave_one_out": {str(k): v for k, v in fine.evalQA.items()}}
    with open(os.path.join(out_dir, "vqa_expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=0)

    norm_inputs = sorted(set(x for pool in ANSWER_POOLS.values() for x in pool)) + [
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j.k", "1,000 (approx.)",
        "Two Dogs", "the one", "an Eight", "NONE", "3.14.", "x .5", "it's 5 o'clock", "yall", "somebodys",
        "couldn'tve", "a ; b", "a;b", "12,3 x;y", "  spaced  out  ", "İ", "éclair?", "٣,٤", "hello\u00a0world"]
    ev = VQAEval(_VQAIndex([]), _VQAIndex([]), n=2)
    cases = [{"input": s, "punctuation": ev.processPunctuation(s),
              "normalized": ev.processDigitArticle(ev.processPunctuation(s.replace("\n", " ").replace("\t", " ").strip()))}
             for s in norm_inputs]
    with open(os.path.join(out_dir, "vqa_normalization_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    print("vqa:", expected["overall"], reported.accuracy["overall"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "eval"))
    ap.add_argument("--vqa-eval-dir", required=True, help="directory holding the original vqaEval.py (Python 3 prints)")
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    captions(random.Random(args.seed), args.out)
    vqa(random.Random(args.seed + 1), args.out, args.vqa_eval_dir)


if __name__ == "__main__":
    main()
