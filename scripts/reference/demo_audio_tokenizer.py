#!/usr/bin/env python3
"""Trains the SentencePiece tokenizer of the audio demo (data/demo/sounds.model).

Run from the repository root: venv/bin/python scripts/reference/demo_audio_tokenizer.py
Needs: pip install sentencepiece protobuf

The corpus is every caption of the synthetic sound clips (Sources/KosmosAudio/SyntheticSounds.swift):
one to four events, each "high", "low", "chirp" or "noise", in order, joined by spaces (340
captions), the same after the prompt "Sounds:", and the prompt alone. Trained as
demo_tokenizer.py trains the shapes tokenizer (its `train`: unigram, identity normalisation, every
word seeded as one piece), with its ids: <unk>=0, <s>=1, </s>=2, <pad>=3.
"""
import itertools
import os
import sys

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(__file__))
from demo_tokenizer import ROOT, train, words_of  # noqa: E402

OUT = os.path.join(ROOT, "data", "demo", "sounds.model")
EVENTS = ["high", "low", "chirp", "noise"]
PROMPT = "Sounds:"


def corpus():
    captions = [" ".join(seq) for n in range(1, 5) for seq in itertools.product(EVENTS, repeat=n)]
    return captions + [f"{PROMPT} {c}" for c in captions] + [PROMPT]


def main():
    lines = corpus()
    words = sorted({w for line in lines for w in words_of(line)})
    vocab_size = 4 + len(words) + 1 + len({ch for w in words for ch in w}) + 1
    data = train(lines, vocab_size)
    assert data == train(lines, vocab_size), "training is not deterministic"
    sp = spm.SentencePieceProcessor(model_proto=data)
    multi = {w: p for w in EVENTS if (p := sp.encode(w, out_type=str)) != ["▁" + w]}
    assert not multi, f"words split into several pieces: {multi}"
    for line in lines:
        assert sp.decode(sp.encode(line)) == line, line
    assert [sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()] == [0, 1, 2, 3]
    with open(OUT, "wb") as f:
        f.write(data)
    print(f"wrote {OUT}: {len(data)} bytes, {sp.get_piece_size()} pieces, {len(lines)} corpus lines")
    print(" ".join(sp.id_to_piece(i) for i in range(sp.get_piece_size())))
    for example in ["Sounds: high low low chirp", "noise"]:
        print(example, "->", sp.encode(example, out_type=str), sp.encode(example))


if __name__ == "__main__":
    main()
