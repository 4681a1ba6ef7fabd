#!/usr/bin/env python3
"""Trains the demo SentencePiece tokenizer for the synthetic shapes data (data/demo/shapes.model).

Run from the repository root: venv/bin/python scripts/reference/demo_tokenizer.py
Needs: pip install sentencepiece protobuf

The corpus is generated exhaustively from the vocabulary of SyntheticShapes
(Sources/KosmosVision/SyntheticShapes.swift): every caption "a <color> <shape> <relation> a <color>
<shape>" (two different shapes, two different colours, 4 relations: 720 captions), the same
captions after the prompt "An image of", every question alone, followed by its answer, and in the
VQA prompt form "Question: <q> Answer: <a>" (as `kosmos eval vqa` writes it), and every answer
alone (colours, shapes, the counts one..four).

Training: SentencePiece unigram, identity normalisation (case and "?" kept), full character
coverage, one thread, no sentence sampling or shuffling. The unigram trainer's own seed pieces
(substrings repeated across *distinct* words) miss most words of so small a closed vocabulary, so
the seed candidates are given explicitly (`seed_sentencepieces_file`): every whole word with its
"▁" prefix, "?" and ":", scored by corpus frequency; EM then trains the scores and the characters
are added as usual. The seed file's temporary path is cleared from the saved trainer_spec so the
output bytes do not depend on it.

Ids: <unk>=0, <s>=1, </s>=2, <pad>=3. The script checks that every word is the single piece
"▁word", that every corpus line round-trips, and that a second training gives identical bytes.
"""
import collections
import io
import itertools
import os
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "data", "demo", "shapes.model")
PUNCTUATION = ["?", ":"]

COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle"]
RELATIONS = ["above", "below", "to the left of", "to the right of"]
COUNTS = ["one", "two", "three", "four"]  # "how many shapes are there?" answers (scenes have two today)
PROMPT = "An image of"


def corpus():
    captions = [f"a {c1} {s1} {rel} a {c2} {s2}"
                for s1, s2 in itertools.permutations(SHAPES, 2)
                for c1, c2 in itertools.permutations(COLORS, 2)
                for rel in RELATIONS]
    qa = [(f"what color is the {s}?", c) for s in SHAPES for c in COLORS]
    qa += [(f"what shape is {rel} the {c} {s2}?", s1)
           for rel in RELATIONS for c in COLORS for s1, s2 in itertools.permutations(SHAPES, 2)]
    qa += [("how many shapes are there?", n) for n in COUNTS]
    questions = sorted({q for q, _ in qa})
    answers = COLORS + SHAPES + COUNTS
    lines = captions + [f"{PROMPT} {c}" for c in captions] + [PROMPT]
    lines += questions + [f"{q} {a}" for q, a in qa] + [f"Question: {q} Answer: {a}" for q, a in qa] + answers
    return lines


def words_of(line):
    for p in PUNCTUATION:
        line = line.replace(p, " ")
    return line.split()


def seed_pieces(lines):
    counts = collections.Counter("▁" + w for line in lines for w in words_of(line))
    counts.update({p: n for p in PUNCTUATION if (n := sum(line.count(p) for line in lines)) > 0})
    return "".join(f"{piece}\t{n}\n" for piece, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def train(lines, vocab_size):
    with tempfile.TemporaryDirectory() as tmp:
        seeds = os.path.join(tmp, "seeds.tsv")
        with open(seeds, "w", encoding="utf-8") as f:
            f.write(seed_pieces(lines))
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, model_type="unigram", vocab_size=vocab_size,
            seed_sentencepieces_file=seeds, character_coverage=1.0, normalization_rule_name="identity",
            num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, byte_fallback=False,
            unk_id=0, bos_id=1, eos_id=2, pad_id=3, unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
            pad_piece="<pad>", minloglevel=2)
    proto = model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    proto.trainer_spec.ClearField("seed_sentencepieces_file")
    return proto.SerializeToString(deterministic=True)


def main():
    lines = corpus()
    words = sorted({w for line in lines for w in words_of(line)})
    # The largest vocabulary there is: 4 special pieces, the seeds (words and punctuation), every
    # character of the words, and "▁" alone.
    vocab_size = 4 + len(words) + len(PUNCTUATION) + len({ch for w in words for ch in w}) + 1
    data = train(lines, vocab_size)
    assert data == train(lines, vocab_size), "training is not deterministic"
    sp = spm.SentencePieceProcessor(model_proto=data)
    multi = {w: p for w in words if (p := sp.encode(w, out_type=str)) != ["▁" + w]}
    assert not multi, f"words split into several pieces: {multi}"
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert all(p in pieces for p in PUNCTUATION)
    for line in lines:
        assert sp.decode(sp.encode(line)) == line, line
    assert [sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()] == [0, 1, 2, 3]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(data)
    print(f"wrote {OUT}: {len(data)} bytes, {len(pieces)} pieces, {len(lines)} corpus lines, "
          f"{len(words)} words, each one piece")
    print(" ".join(pieces))
    for example in ["An image of a red circle above a blue square",
                    "Question: what shape is to the left of the green triangle? Answer: square"]:
        print(example, "->", sp.encode(example, out_type=str), sp.encode(example))


if __name__ == "__main__":
    main()
