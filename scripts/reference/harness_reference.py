#!/usr/bin/env python3
"""Parity fixtures for `kosmos eval task` (Tests/Fixtures/harness/): EleutherAI's
lm-evaluation-harness itself scoring a tiny Kosmos-1 decoder on small local files.

Run from the repository root:  venv/bin/python scripts/reference/harness_reference.py
Needs (scripts/reference/requirements.txt): torch, torchscale, sentencepiece, safetensors,
lm-eval==0.4.13 (its task YAMLs and utils.py are the rules under test).

What it writes:
- one data file per task in the schema the dataset is *published* in (what a user downloads):
  hellaswag_val.jsonl (rowanz/hellaswag: ctx_a, ctx_b, activity_label, endings, label int),
  piqa_valid.jsonl + piqa_valid-labels.lst (ybisk/piqa: labels in their own file),
  boolq_val.jsonl (SuperGLUE: label true/false), cb_val.jsonl (SuperGLUE: label as a word),
  copa_val.jsonl (SuperGLUE), storycloze_2016_val.csv (the CSV with its InputSentence1...
  headers), winogrande_dev.jsonl (allenai: answer "1"/"2"), WSCollection.xml (the Winograd
  collection's XML layout), relativesize_pairs.txt / memorycolor.csv / colorterms.csv (VaLM's
  files of the Kosmos-1 paper's probes, whose task YAMLs are written here from docs/evaluation.md);
- tokenizer.model (a SentencePiece unigram trained here on those texts), and a Kosmos-1 model
  directory `model/` (config.json + model.safetensors): a torchscale sub-LN/xPos decoder with
  random weights; the vision tower, resampler and projection are Tests/Fixtures/kosmos_tiny's
  (text tasks never run them);
- expected.json: for each run (task, shots) the harness's metrics and stderrs, and per document
  the request strings (context, continuation), every choice's log-likelihood and is_greedy, acc and
  acc_norm.

The harness reads each file converted to the schema of the Hugging Face dataset its YAML names
(the conversion the dataset's loader does: PIQA's labels joined, BoolQ's bool and CB's word made
ints, StoryCloze's headers renamed), through a task YAML that includes the harness's own and
changes only where the data comes from. The language model is a `TemplateLM` subclass, so the
harness's own code splits contexts from continuations: tok_encode is BOS + SentencePiece ids (as
the Kosmos-1 processor encodes a text prompt), and _loglikelihood_tokens runs the decoder on
context + continuation[:-1] and sums the float32 log-softmax at the continuation, as HFLM does.
"""
import csv
import json
import os
import random
import shutil
import tempfile
import warnings

warnings.filterwarnings("ignore")
import sentencepiece as spm
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder

import lm_eval
from lm_eval.api.model import TemplateLM
from lm_eval.tasks import TaskManager

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "harness")
TASKS_DIR = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
DIM = 32

WORDS = ("man woman dog cat child team chef tourist driver painter pan sink sponge ball kite river bridge "
         "garden kitchen window table bread water paper guitar bicycle road hill door letter phone").split()
VERBS = ("picks up|puts down|washes|throws|looks at|walks to|opens|closes|paints|carries|drops|holds|"
         "cleans|fixes|reads|writes").split("|")
ADJ = "red small old new wet dry heavy bright quiet tall".split()
ODD = ["ÉCOLE", "straße", "naïve", "İstanbul", "ǆungla", "café", "NASA", "Zoë", "résumé", "ΟΔΟΣ"]


def phrase(rng, words=None):
    w = words or WORDS
    s = "the %s %s the %s %s" % (rng.choice(ADJ), rng.choice(w), rng.choice(VERBS), rng.choice(w))
    if rng.random() < 0.25:
        s += " near the " + rng.choice(ODD)
    return s


def sentence(rng):
    s = phrase(rng)
    return s[0].upper() + s[1:] + rng.choice([".", ".", "!", "?"])


def hellaswag_docs(rng, n):
    docs = []
    for i in range(n):
        wikihow = i % 3 == 0
        label = rng.choice(["Washing dishes", "Playing guitar", "Home and Garden", "Riding a bike", "Finance and Business"])
        if wikihow:
            ctx_a = "[header] How to %s %s [title] %s" % (rng.choice(VERBS), rng.choice(WORDS), sentence(rng))
            ctx_b = rng.choice(["[step] " + phrase(rng), "", phrase(rng) + " [substeps]  now"])
        else:
            ctx_a = sentence(rng)
            ctx_b = rng.choice([phrase(rng), phrase(rng).upper(), "  then " + phrase(rng) + "  and  so", "ǆ" + phrase(rng)])
        endings = []
        for j in range(4):
            e = phrase(rng) + rng.choice([".", " [title] " + sentence(rng), " [step] " + phrase(rng) + ".", "  " + phrase(rng) + "   ."])
            endings.append(e)
        docs.append({"ind": 100 + i, "activity_label": label, "ctx_a": ctx_a, "ctx_b": ctx_b,
                     "ctx": (ctx_a + " " + ctx_b).strip(), "split": "val", "split_type": "indomain",
                     "label": rng.randrange(4), "endings": endings, "source_id": "synthetic~%d" % i})
    return docs


def piqa_docs(rng, n):
    return [{"goal": "How do I %s the %s?" % (rng.choice(VERBS), rng.choice(WORDS)) if i % 2 else "To " + phrase(rng),
             "sol1": phrase(rng) + ".", "sol2": phrase(rng) + (" " * (i % 3)) + ". " + phrase(rng)} for i in range(n)]


COLORS = ["black", "blue", "brown", "green", "grey", "orange", "pink", "purple", "red", "white", "yellow"]


def wsc_collection(rng):
    """A WSCollection.xml in the published layout (irregular whitespace and newlines inside the
    elements, "A"/" B. " answer letters, a comment, an entity), and the rows the Hugging Face
    `winograd_wsc` loader makes of it (its _generate_examples: each piece's whitespace collapsed,
    text = txt1 pron txt2, pronoun_loc = len(txt1) + 1, label = "B" in correctAnswer)."""
    cases = [  # (txt1, pron, txt2, answers)
        ("The %s asked the %s for help because", "he", "was %s.", ("The {a}", "The {b}")),
        ("The %s gave the %s a %s and", "her", "  friend was happy.", ("the {a}", "The {b}")),
        ("The %s could not lift the %s. ", "It", "was too heavy.", ("The {a}", "The {b}")),
        ("", "They", "said the %s and the %s are %s.", ("A {a}", "Their {b}")),
        ("The %s\n   told the %s that", "their", "letter was   %s &amp; wet.", ("The {a}", "the {b}")),
        ("The %s and the %s met; the", "his", "%s was old.", ("An {a}", "He {b}")),
        ("When the %s saw the %s,", "she", "smiled at %s.", ("The {a}", "The {b} The")),
    ]
    parts, rows = ['<?xml version="1.0" encoding="UTF-8"?>\n<!-- synthetic schemas in the layout of WSCollection.xml -->\n<collection>\n'], []
    for i, (t1, pron, t2, answers) in enumerate(cases):
        a, b = rng.sample(WORDS, 2)
        fill = [rng.choice(WORDS), rng.choice(WORDS), rng.choice(ADJ)]
        n1 = t1.count("%s")
        t1 = t1 % tuple(fill[:n1])
        t2 = t2 % tuple(fill[n1:n1 + t2.count("%s")])
        opts = [x.format(a=a, b=b) for x in answers]
        letter = ["A", " B. ", "  A.", "B", " B ", "A", "B"][i]
        parts.append("  <schema>\n    <text>\n      <txt1>%s </txt1>\n      <pron> %s </pron>\n      <txt2>%s</txt2>\n    </text>\n"
                     "    <quote><quote1></quote1><pron>%s</pron><quote2>%s</quote2></quote>\n"
                     "    <answers>\n      <answer>%s </answer>\n      <answer> %s</answer>\n    </answers>\n"
                     "    <correctAnswer>%s</correctAnswer>\n    <source>(synthetic %d)</source>\n  </schema>\n"
                     % (t1, pron, t2, pron, t2, opts[0], opts[1], letter, i))
    parts.append("</collection>\n")
    xml = "".join(parts)
    import xml.etree.ElementTree as ET
    clean = lambda t: " ".join(t.split())
    for schema in ET.fromstring(xml):
        text = schema.find("text")
        left, right = clean(text.findtext("txt1", "")), clean(text.findtext("txt2", ""))
        pron = clean(text.findtext("pron"))
        rows.append({"text": " ".join([left, pron, right]).strip(), "pronoun": pron,
                     "pronoun_loc": len(left) + 1 if len(left) > 0 else 0, "quote": "", "quote_loc": 0,
                     "options": [clean(o.text) for o in schema.find("answers").findall("answer")],
                     "label": int("B" in clean(schema.findtext("correctAnswer"))), "source": clean(schema.findtext("source"))})
    return xml, rows


def main():
    rng = random.Random(7)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    hellaswag = hellaswag_docs(rng, 12)
    piqa = piqa_docs(rng, 10)
    piqa_labels = [rng.randrange(2) for _ in piqa]
    boolq = [{"question": phrase(rng), "passage": " ".join(sentence(rng) for _ in range(3)), "idx": i,
              "label": rng.random() < 0.5} for i in range(10)]
    cb = [{"premise": sentence(rng) + " " + sentence(rng), "hypothesis": phrase(rng) if i % 4 else phrase(rng) + ".",
           "label": ["entailment", "contradiction", "neutral"][i % 3 if i < 6 else rng.randrange(3)], "idx": i}
          for i in range(10)]
    copa = [{"premise": sentence(rng) + ("  " if i % 4 == 0 else ""), "choice1": sentence(rng),
             "choice2": rng.choice(ODD) + " " + phrase(rng) + ".", "question": ["cause", "effect"][i % 2],
             "idx": i, "label": rng.randrange(2)} for i in range(10)]
    story = [{"InputStoryid": "s-%04d" % i, "InputSentence1": sentence(rng), "InputSentence2": sentence(rng),
              "InputSentence3": sentence(rng) + ("," if i == 3 else ""), "InputSentence4": sentence(rng),
              "RandomFifthSentenceQuiz1": sentence(rng), "RandomFifthSentenceQuiz2": '"' + sentence(rng) + '", she said.',
              "AnswerRightEnding": 1 + rng.randrange(2)} for i in range(10)]
    wino = []
    for i in range(12):
        a, b = rng.sample(WORDS, 2)
        s = "The %s %s the %s because _ was %s%s" % (a, rng.choice(VERBS), b, rng.choice(ADJ),
                                                     rng.choice([".", " today.", " and " + phrase(rng) + ".", ""]))
        wino.append({"qID": "q%d-1" % i, "sentence": s, "option1": a.capitalize() if i % 5 == 0 else a, "option2": b,
                     "answer": rng.choice(["1", "2"])})

    def write_jsonl(name, rows):
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    write_jsonl("hellaswag_val.jsonl", hellaswag)
    write_jsonl("piqa_valid.jsonl", piqa)
    with open(os.path.join(OUT, "piqa_valid-labels.lst"), "w") as f:
        f.write("".join("%d\n" % l for l in piqa_labels))
    write_jsonl("boolq_val.jsonl", boolq)
    write_jsonl("cb_val.jsonl", cb)
    write_jsonl("copa_val.jsonl", copa)
    with open(os.path.join(OUT, "storycloze_2016_val.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(story[0].keys()))
        w.writeheader()
        w.writerows(story)
    write_jsonl("winogrande_dev.jsonl", wino)

    # The tokenizer: a SentencePiece unigram over every text above (deterministic: one thread, no
    # sampling or shuffling).
    texts = []
    for d in hellaswag: texts += [d["activity_label"], d["ctx_a"], d["ctx_b"]] + d["endings"]
    for d in piqa: texts += [d["goal"], d["sol1"], d["sol2"]]
    for d in boolq: texts += [d["question"], d["passage"]]
    for d in cb: texts += [d["premise"], d["hypothesis"]]
    for d in copa: texts += [d["premise"], d["choice1"], d["choice2"]]
    for d in story: texts += [d["InputSentence%d" % k] for k in range(1, 5)] + [d["RandomFifthSentenceQuiz1"], d["RandomFifthSentenceQuiz2"]]
    for d in wino: texts += [d["sentence"]]
    texts += ["Question: Answer: True, False, or Neither? because therefore yes no"]
    tmp = tempfile.mkdtemp()
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(t for t in texts if t.strip()) + "\n")
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(tmp, "sp"), vocab_size=300,
                                   model_type="unigram", character_coverage=1.0, num_threads=1,
                                   input_sentence_size=0, shuffle_input_sentence=False, hard_vocab_limit=False,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1)
    model_dir = os.path.join(OUT, "model")
    os.makedirs(model_dir)
    shutil.copy(os.path.join(tmp, "sp.model"), os.path.join(model_dir, "tokenizer.model"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    vocab = sp.vocab_size() + 2  # + <image>, </image>

    # The model: a torchscale sub-LN/xPos decoder (random), the rest from kosmos_tiny.
    torch.manual_seed(5)
    decoder = Decoder(DecoderConfig(decoder_embed_dim=DIM, decoder_attention_heads=4, decoder_ffn_embed_dim=64,
                                    decoder_layers=2, vocab_size=vocab, xpos_rel_pos=True, subln=True),
                      embed_tokens=torch.nn.Embedding(vocab, DIM, padding_idx=0))
    with torch.no_grad():  # livelier than the init: log-likelihoods that differ between choices
        decoder.embed_tokens.weight.mul_(3.0)
        decoder.output_projection.weight.mul_(3.0)
    decoder.eval()
    tensors = {"decoder." + k: v.detach().clone().contiguous() for k, v in decoder.state_dict().items()}
    with safe_open(os.path.join(ROOT, "Tests", "Fixtures", "kosmos_tiny.safetensors"), "pt") as f:
        for k in f.keys():
            if k.startswith("model.") and not k.startswith("model.decoder."):
                tensors[k[len("model."):]] = f.get_tensor(k)
    save_file(tensors, os.path.join(model_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(ROOT, "Tests", "Fixtures", "kosmos_tiny_config.json")) as f:
        config = json.load(f)
    config.update({"vocab_size": vocab, "image_token_id": vocab - 2, "image_end_token_id": vocab - 1,
                   "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2})
    config["decoder"].update({"vocab_size": vocab, "max_target_positions": 1024})
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    class TinyLM(TemplateLM):
        @property
        def eot_token_id(self):
            return 2

        @property
        def prefix_token_id(self):
            return 1

        def tok_encode(self, string, add_special_tokens=None, **kwargs):
            return [1] + sp.encode(string)

        def _loglikelihood_tokens(self, requests, **kwargs):
            out = []
            with torch.no_grad():
                for _, context, continuation in requests:
                    tokens = torch.tensor([(context + continuation)[:-1]])
                    logits, _ = decoder(tokens)
                    logp = F.log_softmax(logits[0, -len(continuation):], dim=-1)
                    target = torch.tensor(continuation)
                    greedy = bool((logp.argmax(dim=-1) == target).all())
                    out.append((float(logp.gather(1, target[:, None]).sum()), greedy))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError

    # WSC273, RelativeSize, MemoryColor, ColorTerms: their own random stream, written after the
    # tokenizer is trained (so it and the model stay those of the tasks above).
    rng2 = random.Random(11)
    wsc_xml, wsc_rows = wsc_collection(rng2)
    with open(os.path.join(OUT, "WSCollection.xml"), "w", encoding="utf-8") as f:
        f.write(wsc_xml)
    pairs = []
    while len(pairs) < 6:
        a, b = rng2.sample(WORDS, 2)
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    with open(os.path.join(OUT, "relativesize_pairs.txt"), "w") as f:
        f.write("".join("%s %s\n" % p for p in pairs))
    size_rows = []
    for a, b in pairs:  # each pair asked both ways, as `kosmos eval task` reads the file
        size_rows += [{"a": a, "b": b, "label": 0}, {"a": b, "b": a, "label": 1}]
    descriptors = ["a ", "", "the inside of a", "the ", "an", "the fruit"]
    memory = [{"Index": i, "Descriptor": rng2.choice(descriptors), "Item": rng2.choice(WORDS), "Color": rng2.choice(COLORS)} for i in range(8)]
    with open(os.path.join(OUT, "memorycolor.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["Index", "Descriptor", "Item", "Color"])
        w.writeheader()
        w.writerows(memory)
    memory_rows = [{"object": (m["Descriptor"].strip() + " " + m["Item"]).strip(), "label": COLORS.index(m["Color"])} for m in memory]
    terms = [{"object": w, "color": rng2.choice(COLORS)} for w in rng2.sample(WORDS, 6)]
    with open(os.path.join(OUT, "colorterms.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["object", "color"])
        w.writeheader()
        w.writerows(terms)
    terms_rows = [{"object": t["object"], "label": COLORS.index(t["color"])} for t in terms]

    # The files as the harness's datasets have them.
    hf = os.path.join(tmp, "hf")
    os.makedirs(hf)

    def hf_jsonl(name, rows):
        path = os.path.join(hf, name)
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        return path

    sources = {
        "hellaswag": ("hellaswag/hellaswag.yaml", hf_jsonl("hellaswag.jsonl", [dict(d, label=str(d["label"])) for d in hellaswag]), ["train", "validation"]),
        "piqa": ("piqa/piqa.yaml", hf_jsonl("piqa.jsonl", [dict(d, label=l) for d, l in zip(piqa, piqa_labels)]), ["train", "validation"]),
        "boolq": ("super_glue/boolq/default.yaml", hf_jsonl("boolq.jsonl", [dict(d, label=int(d["label"])) for d in boolq]), ["train", "validation"]),
        "cb": ("super_glue/cb/default.yaml", hf_jsonl("cb.jsonl", [dict(d, label=["entailment", "contradiction", "neutral"].index(d["label"])) for d in cb]), ["train", "validation"]),
        "copa": ("super_glue/copa/default.yaml", hf_jsonl("copa.jsonl", copa), ["train", "validation"]),
        "storycloze_2016": ("storycloze/storycloze_2016.yaml", hf_jsonl("story.jsonl", [
            {"story_id": d["InputStoryid"], "input_sentence_1": d["InputSentence1"], "input_sentence_2": d["InputSentence2"],
             "input_sentence_3": d["InputSentence3"], "input_sentence_4": d["InputSentence4"],
             "sentence_quiz1": d["RandomFifthSentenceQuiz1"], "sentence_quiz2": d["RandomFifthSentenceQuiz2"],
             "answer_right_ending": d["AnswerRightEnding"]} for d in story]), ["validation", "test"]),
        "winogrande": ("winogrande/default.yaml", hf_jsonl("winogrande.jsonl", wino), ["train", "validation"]),
        "wsc273": ("wsc273/default.yaml", hf_jsonl("wsc273.jsonl", wsc_rows), ["test"]),
    }
    yamls = os.path.join(tmp, "tasks")
    os.makedirs(yamls)
    for name, (yaml, path, splits) in sources.items():
        # The harness's own YAML (and its utils.py, copied beside it for `!function`), with only the
        # data source changed: every split is the one local file (the few-shot pool is the eval
        # file, the item itself dropped, as `kosmos eval task` does without --fewshot-data).
        src = os.path.join(TASKS_DIR, yaml)
        folder = os.path.join(yamls, name)
        os.makedirs(folder)
        for extra in os.listdir(os.path.dirname(src)):
            if extra.endswith(".py"):
                shutil.copy(os.path.join(os.path.dirname(src), extra), os.path.join(folder, extra))
        body, in_tag = [], False
        with open(src) as f:
            for line in f.read().splitlines():
                if in_tag and line.startswith("  - "):
                    continue
                in_tag = line.startswith("tag:")
                if not in_tag and not line.startswith(("task:", "dataset_path:", "dataset_name:")):
                    body.append(line)
        files = "".join("\n    %s: %s" % (s, path) for s in splits)
        with open(os.path.join(folder, "local_%s.yaml" % name), "w") as f:
            f.write("task: local_%s\ndataset_path: json\ndataset_kwargs:\n  data_files:%s\n" % (name, files) + "\n".join(body) + "\n")
            if splits == ["test"]:
                # wsc273's YAML names no few-shot split, so the harness would draw an item as its
                # own example; with the few-shot split = the test split it leaves the item out,
                # which is the rule `kosmos eval task` follows for every task (docs/evaluation.md).
                f.write("fewshot_split: test\n")

    # The paper's probes are not in the harness: their definitions (docs/evaluation.md) as task
    # YAMLs, so the harness's own code builds and scores the requests.
    color_choices = "[" + ", ".join('"%s"' % c for c in COLORS) + "]"
    probes = {
        "relativesize": (hf_jsonl("relativesize.jsonl", size_rows), "Is {{a}} larger than {{b}}?", '["Yes", "No"]'),
        "memorycolor": (hf_jsonl("memorycolor.jsonl", memory_rows), "The color of {{object}} is?", color_choices),
        "colorterms": (hf_jsonl("colorterms.jsonl", terms_rows), "The color of {{object}} is?", color_choices),
    }
    for name, (path, text, choices) in probes.items():
        folder = os.path.join(yamls, name)
        os.makedirs(folder)
        with open(os.path.join(folder, "local_%s.yaml" % name), "w") as f:
            f.write("task: local_%s\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: %s\n"
                    "output_type: multiple_choice\ntest_split: test\nfewshot_split: test\ndoc_to_text: \"%s\"\ndoc_to_target: label\n"
                    "doc_to_choice: '%s'\nmetric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
                    % (name, path, text, choices))
    manager = TaskManager(include_path=yamls)
    lm = TinyLM()
    runs = [(name, 0) for name in sources if name not in probes and name != "wsc273"] + [("hellaswag", 2), ("winogrande", 2), ("copa", 3)]
    runs += [("wsc273", 0), ("relativesize", 0), ("memorycolor", 0), ("colorterms", 0), ("wsc273", 2), ("relativesize", 2)]
    expected = {"lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13", "runs": []}
    for name, shots in runs:
        result = lm_eval.simple_evaluate(model=lm, tasks=["local_" + name], task_manager=manager, num_fewshot=shots,
                                         bootstrap_iters=100000, log_samples=True, fewshot_random_seed=1234,
                                         random_seed=0, numpy_random_seed=1234, torch_random_seed=1234)
        metrics = {k.split(",")[0]: v for k, v in result["results"]["local_" + name].items() if "," in k}
        samples = []
        for s in sorted(result["samples"]["local_" + name], key=lambda s: s["doc_id"]):
            samples.append({"doc_id": s["doc_id"], "arguments": [list(a) for a in s["arguments"]],
                            "loglikelihoods": [r[0][0] for r in s["resps"]], "is_greedy": [r[0][1] for r in s["resps"]],
                            "acc": s.get("acc"), "acc_norm": s.get("acc_norm"), "target": s.get("target")})
        # The metrics also as Python's repr: a JSON reader may round a decimal differently
        # (Foundation's on Linux reads some one or two ulps off); Double(repr) is exact.
        exact = {k: repr(float(v)) for k, v in metrics.items() if isinstance(v, float)}
        expected["runs"].append({"task": name, "shots": shots, "metrics": metrics, "metrics_repr": exact, "samples": samples})
        print(name, shots, {k: v for k, v in metrics.items()})
    # The sampler's random numbers, and the Python string operations the task rules use.
    draws = []
    for seed in [0, 1234, 2 ** 40 + 5]:
        r = random.Random(seed)
        calls = [(12, 3), (12, 12), (30, 7), (50, 7), (100, 3), (1000, 9), (5, 1)]
        draws.append({"seed": seed, "calls": [[n, k] for n, k in calls],
                      "samples": [r.sample(range(n), k) for n, k in calls],
                      "bits": [[k, r.getrandbits(k)] for k in [1, 5, 31, 32, 33, 64]]})
    texts = ["hello World", "  NASA  ", "ǆungla", "ΟΔΟΣ ΣΑΣ", "Σ", "aΣ.", "İstanbul", "ﬁsh ﬂy", "straße", "\u00dfa",
             "\u1e9e", "x\r\n\x1c\x85\u200b", "\u2028y\u3000", "[step] a [title] b [c\nd] e [f]g]  h   i", "", "  ",
             "ÉCOLE the [header] How to x [title] y.", "a  [title] b", "ǈ x", "\u0130X"]
    expected["python_text"] = [{"text": t, "capitalize": t.capitalize(), "strip": t.strip(), "rstrip": t.rstrip(),
                                "lower_first": (t[0].lower() + t[1:]) if t else "", "len": len(t),
                                "hellaswag": __import__("importlib").import_module("lm_eval.tasks.hellaswag.utils").preprocess(t)}
                               for t in texts]
    expected["python_random"] = draws
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
