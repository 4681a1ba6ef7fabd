#!/usr/bin/env python3
"""Raven IQ parity fixture (Tests/Fixtures/eval/raven/): the Kosmos-1 paper's scoring, written
here from its description (Huang et al. 2023, section 4.2.1: "The matrix-style images are
flattened and fed into the models one-by-one", the instruction "Here are three/four/eight
images:", "The following image is:", "Is it correct?", and "we append each possible candidate to
the context separately and compare the probability that the model outputs 'Yes' ... The candidate
that yields the largest probability is regarded as the prediction"), run on the PyTorch model of
Tests/Fixtures/harness/model.

The model is the Kosmos-1 design of kosmos_reference.py (torchscale sub-LN/xPos decoder,
transformers' CLIPVisionModel, flamingo-pytorch's PerceiverResampler, image_proj) with that
directory's weights; the prompt is tokenized as a Kosmos-1 prompt is (BOS, each text segment by
SentencePiece on its own, each image as <image>, the resampler's slots, </image>); the images are
preprocessed by transformers' CLIPImageProcessorPil (OpenAI CLIP's settings at the tower's 16 px;
no image with transparency: transformers 5 composites those onto white where we drop alpha as
transformers 4 did, a difference of its own, issue 21).
log P("Yes") is the summed log-softmax of the tokens " Yes" adds after "Is it correct?".

Run: /work/benchvenv/bin/python scripts/reference/raven_reference.py (torch, torchscale,
transformers, flamingo-pytorch, sentencepiece, safetensors; versions in requirements.txt).
"""
import json
import os
import random
import shutil
import sys
import warnings

warnings.filterwarnings("ignore")
import sentencepiece as spm
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kosmos_reference as kr  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "harness", "model")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "eval", "raven")
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def main():
    config = json.load(open(os.path.join(MODEL, "config.json")))
    kr.VOCAB = config["vocab_size"]
    model = kr.Kosmos()
    missing, unexpected = model.load_state_dict(load_file(os.path.join(MODEL, "model.safetensors")), strict=False)
    assert not unexpected and all("version" in k or "embed_positions" in k for k in missing), (missing, unexpected)
    model.eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(MODEL, "tokenizer.model"))
    size = config["vision"]["image_size"]
    processor = CLIPImageProcessorPil(do_resize=True, size={"shortest_edge": size}, resample=3, do_center_crop=True,
                                      crop_size={"height": size, "width": size}, do_rescale=True, do_normalize=True,
                                      image_mean=[0.48145466, 0.4578275, 0.40821073],
                                      image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
    img, img_end, slots = config["image_token_id"], config["image_end_token_id"], config["num_image_tokens"]

    def tokens_of(prompt):
        ids = [config["bos_token_id"]]
        for k, segment in enumerate(prompt.split("<image>")):
            if k > 0:
                ids += [img] + [config["pad_token_id"]] * slots + [img_end]
            if segment:
                ids += sp.encode(segment)
        return ids

    base, full = sp.encode("Is it correct?"), sp.encode("Is it correct? Yes")
    yes = full[len(base):] if full[:len(base)] == base else full

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "img"))
    sources = [os.path.join(ROOT, "Tests", "Fixtures", "images", "inputs", n)
               for n in ["rgb8_224x224.png", "rgb8_100x150_interlaced.png", "rgb_7x5.jpg", "gray8_33x65.png", "rgb_101x77_444.jpg", "rgb8_3x500.png"]]
    for i, s in enumerate(sources):
        shutil.copy(s, os.path.join(OUT, "img", "%d%s" % (i, os.path.splitext(s)[1])))
    names = sorted(os.listdir(os.path.join(OUT, "img")), key=lambda n: int(n.split(".")[0]))
    rng = random.Random(5)
    items = []
    for n_context, n_candidates in [(3, 6), (4, 6), (8, 6), (2, 3)]:
        items.append({"context": ["img/" + rng.choice(names) for _ in range(n_context)],
                      "candidates": ["img/" + rng.choice(names) for _ in range(n_candidates)],
                      "answer": rng.randrange(n_candidates)})
    expected = []
    with torch.no_grad():
        for item in items:
            scores = []
            for c in item["candidates"]:
                prompt = "Here are %s images:" % NUMBERS[len(item["context"])] + "<image>" * len(item["context"]) \
                         + "The following image is:<image>Is it correct?"
                ids = tokens_of(prompt)
                files = item["context"] + [c]
                pixels = torch.tensor(processor([Image.open(os.path.join(OUT, f)) for f in files], return_tensors="np")["pixel_values"])
                sequence = torch.tensor([ids + yes])
                mask = torch.zeros_like(sequence, dtype=torch.bool)
                for start in [i for i, t in enumerate(ids) if t == img]:
                    mask[0, start + 1:start + 1 + slots] = True
                logits = model(sequence, torch.zeros_like(mask), mask, pixels).double()
                logp = torch.log_softmax(logits[0], dim=-1)
                scores.append(sum(logp[len(ids) - 1 + k, t].item() for k, t in enumerate(yes)))
            prediction = max(range(len(scores)), key=lambda k: (scores[k], -k))
            expected.append({"yes_log_probabilities": scores, "prediction": prediction, "answer": item["answer"]})
    with open(os.path.join(OUT, "iq.jsonl"), "w") as f:
        f.write("".join(json.dumps(item) + "\n" for item in items))
    accuracy = sum(e["prediction"] == e["answer"] for e in expected) / len(expected)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"yes_tokens": yes, "items": expected, "accuracy": accuracy}, f, indent=1)
    print(accuracy, [e["prediction"] for e in expected])


if __name__ == "__main__":
    main()
