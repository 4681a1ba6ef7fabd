#!/usr/bin/env python3
"""Trains the SentencePiece tokenizer of the video demo (data/demo/motion.model).

Run from the repository root: venv/bin/python scripts/reference/demo_video_tokenizer.py
Needs: pip install sentencepiece protobuf

The corpus is every caption of the synthetic motion clips (Sources/KosmosVision/SyntheticMotion.swift):
"a <color> <shape> moves <direction>" and the same "and turns <other color>" (6 colours, 3 shapes,
4 directions: 432 captions), each also after the prompt "A video of", and the prompt alone. Trained
as demo_tokenizer.py trains the shapes tokenizer (its `train`), with its ids: <unk>=0, <s>=1,
</s>=2, <pad>=3.
"""
import itertools
import os
import sys

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(__file__))
from demo_tokenizer import COLORS, ROOT, SHAPES, train, words_of  # noqa: E402

OUT = os.path.join(ROOT, "data", "demo", "motion.model")
DIRECTIONS = ["left", "right", "up", "down"]
PROMPT = "A video of"


def corpus():
    captions = []
    for color, shape, direction in itertools.product(COLORS, SHAPES, DIRECTIONS):
        base = f"a {color} {shape} moves {direction}"
        captions.append(base)
        captions += [f"{base} and turns {other}" for other in COLORS if other != color]
    return captions + [f"{PROMPT} {c}" for c in captions] + [PROMPT]


def main():
    lines = corpus()
    words = sorted({w for line in lines for w in words_of(line)})
    vocab_size = 4 + len(words) + len({ch for w in words for ch in w}) + 1
    data = train(lines, vocab_size)
    assert data == train(lines, vocab_size), "training is not deterministic"
    sp = spm.SentencePieceProcessor(model_proto=data)
    multi = {w: p for w in words if (p := sp.encode(w, out_type=str)) != ["▁" + w]}
    assert not multi, f"words split into several pieces: {multi}"
    for line in lines:
        assert sp.decode(sp.encode(line)) == line, line
    assert [sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()] == [0, 1, 2, 3]
    with open(OUT, "wb") as f:
        f.write(data)
    print(f"wrote {OUT}: {len(data)} bytes, {sp.get_piece_size()} pieces, {len(lines)} corpus lines")
    for example in ["A video of a red circle moves left and turns blue"]:
        print(example, "->", sp.encode(example, out_type=str), sp.encode(example))


if __name__ == "__main__":
    main()
