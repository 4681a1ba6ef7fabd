#!/usr/bin/env python3
"""Builds the tokenizer parity fixtures for KosmosTokenizers.

Trains small SentencePiece models with the Python trainer on generated text, converts some of
them to tokenizer.json with transformers' converters, builds a Kosmos-2-style tokenizer (XLM-R
fairseq layout + Kosmos2Processor's added tokens), and records Python's ids and decoded text for
a stress corpus. Output: Tests/Fixtures/tokenizers/.

Usage: /work/venv/bin/python scripts/reference/tokenizers_reference.py [OUT_DIR]
Needs: pip install sentencepiece tokenizers transformers protobuf
"""
import io, json, os, random, sys, types

import sentencepiece as spm
from tokenizers import Tokenizer, AddedToken
from tokenizers.models import BPE
from transformers.convert_slow_tokenizer import (SentencePieceExtractor, SpmConverter, T5Converter,
                                                 LlamaConverter, XLMRobertaConverter)


class _BPEExtractor(SentencePieceExtractor):
    # transformers 5.x SpmConverter.tokenizer() passes vocab_scores where extract() expects a model
    # class (AttributeError for BPE models); ask for BPE explicitly and return (vocab, merges).
    def extract(self, vocab_scores=None, **kw):
        got = super().extract(BPE)
        return got["vocab"], got["merges"]


SpmConverter.SpmExtractor = _BPEExtractor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")
os.makedirs(OUT, exist_ok=True)
rng = random.Random(1234)

WORDS = ("the quick brown fox jumps over lazy dog image text model token language vision "
         "photo caption describe object phrase grounding kosmos swift tensor piece unigram").split()
ACCENTED = "café naïve résumé Ångström façade coöperate über straße œuvre Ærø São Paulo".split()
CJK = ["東京", "日本語", "中文字符", "한국어", "ひらがな", "カタカナ", "漢字テスト"]
ARABIC = ["مرحبا", "العالم", "كتاب", "שלום", "עולם"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇯🇵", "🤖"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "\u0915\u094d\u0937", "o\u0302\u0323"]
FULLWIDTH = ["ＡＢＣ", "１２３", "ｈｅｌｌｏ", "！？", "ｶﾀｶﾅ", "①②", "ﬁ", "㎏"]
CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\u200b", "\ufeff", "\u00ad", "\u2028"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", " \t ", "\u3000", "\u00a0", "\n\n"]
SPECIALS = ["<image>", "</image>", "<s>", "</s>", "<unk>", "<pad>", "<ud1>", "☃"]


def train_text():
    lines = []
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(3, 14)):
            r = rng.random()
            if r < 0.55: parts.append(rng.choice(WORDS))
            elif r < 0.65: parts.append(rng.choice(ACCENTED))
            elif r < 0.72: parts.append(rng.choice(CJK))
            elif r < 0.77: parts.append(rng.choice(ARABIC))
            elif r < 0.85: parts.append(str(rng.randint(0, 99999)))
            elif r < 0.90: parts.append(rng.choice(FULLWIDTH))
            else: parts.append(rng.choice(WORDS).capitalize() + rng.choice(",.;:!?"))
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def stress_corpus(n=300):
    fixed = ["", " ", "  ", "\t", "\n", " \n ", "hello", " hello", "hello ", "  hello   world  ",
             "Hello, World!", "a" * 300, "supercalifragilisticexpialidocious" * 5, "1234567890",
             "3.14159 2,718 1e10 0x1F", "café naïve", "東京は日本の首都です。", "مرحبا بالعالم",
             "😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈", "e\u0301\u0301\u0301", "ＡＢＣ１２３ｈｅｌｌｏ", "\x00\x01\x1b[0m",
             "tab\tseparated\tvalues", "line1\nline2\r\nline3", "<image>", "<image></image>",
             "an <image> here</image> done", "<s>x</s>", " <unk> ", "<ud1>x<ud1>", "☃☃ snow", "ﬁ ㎏ ①",
             "\u3000full\u3000width\u3000space", "nbsp\u00a0here", "zero\u200bwidth", "\ufeffbom",
             "trailing   ", "   leading", "mixed 東京 café 😀 123 ＡＢＣ"]
    cats = [WORDS, ACCENTED, CJK, ARABIC, EMOJI, COMBINING, FULLWIDTH, CONTROL, SPECIALS,
            [str(rng.randint(0, 10**9)) for _ in range(20)], ["x" * 40, "ab" * 30, "日本" * 20]]
    out = list(fixed)
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 12)):
            c = rng.choice(cats)
            parts.append(rng.choice(c))
            parts.append(rng.choice(SPACES) if rng.random() < 0.35 else (" " if rng.random() < 0.8 else ""))
        s = "".join(parts)
        if rng.random() < 0.2: s = rng.choice(SPACES) + s
        out.append(s)
    return out[:n]


SP_MODELS = {
    # name: trainer kwargs
    "uni_nmt_nfkc": dict(model_type="unigram", normalization_rule_name="nmt_nfkc",
                         user_defined_symbols=["<ud1>", "☃"]),
    "uni_identity_bytefb": dict(model_type="unigram", normalization_rule_name="identity", byte_fallback=True,
                                remove_extra_whitespaces=False),
    "uni_nfkc_suffix": dict(model_type="unigram", normalization_rule_name="nfkc",
                            treat_whitespace_as_suffix=True, split_digits=True),
    "bpe_nmt_nfkc": dict(model_type="bpe", normalization_rule_name="nmt_nfkc",
                         user_defined_symbols=["<ud1>", "☃"]),
    "bpe_identity_bytefb": dict(model_type="bpe", normalization_rule_name="identity", byte_fallback=True,
                                remove_extra_whitespaces=False, allow_whitespace_only_pieces=True),
    # Custom normalisation rules (TSV of code points), compiled by the trainer into the charsmap.
    "uni_custom_rules": dict(model_type="unigram", normalization_rule_tsv="@RULES@", byte_fallback=True,
                             remove_extra_whitespaces=True),
    "bpe_identity_nodummy": dict(model_type="bpe", normalization_rule_name="identity", add_dummy_prefix=False,
                                 split_by_number=False),
}


CUSTOM_RULES = [
    # source code points -> target code points (hex), sentencepiece's normalization_rule_tsv format
    ("41", "61"), ("42", "62"), ("43", "63"),          # A B C -> a b c
    ("FF21", "41"), ("FF11", "31"),                     # fullwidth A, 1 -> A, 1
    ("65 301", "E9"),                                    # e + combining acute -> é
    ("9", "20"), ("A", "20"), ("3000", "20"),           # tab, newline, ideographic space -> space
    ("1F600", "3A 29"),                                  # 😀 -> :)
    ("FB01", "66 69"),                                   # ﬁ -> fi
]


def train_all():
    text = train_text()
    rules = os.path.join(OUT, "..", "custom_rules.tsv.tmp")
    with open(rules, "w") as f:
        for a, b in CUSTOM_RULES: f.write(f"{a}\t{b}\n")
    for name, kw in SP_MODELS.items():
        kw = {k: (rules if v == "@RULES@" else v) for k, v in kw.items()}
        path = os.path.join(OUT, name + ".model")
        model = io.BytesIO()
        vocab = 1200 if kw.get("byte_fallback") else 900
        spm.SentencePieceTrainer.train(sentence_iterator=iter(text.splitlines()), model_writer=model,
                                       vocab_size=vocab, character_coverage=0.995, num_threads=2,
                                       hard_vocab_limit=False, minloglevel=2, **kw)
        with open(path, "wb") as f:
            f.write(model.getvalue())
    os.remove(rules)
    # Variants with UNUSED pieces (type 5): BPE must re-segment them (bpe_model.cc rev_merge),
    # unigram must skip them. Edited through sentencepiece's own protobuf bindings.
    from sentencepiece import sentencepiece_model_pb2 as pb
    for src, dst in [("bpe_identity_nodummy", "bpe_unused"), ("uni_identity_bytefb", "uni_unused")]:
        m = pb.ModelProto()
        m.ParseFromString(open(os.path.join(OUT, src + ".model"), "rb").read())
        k = 0
        for p in m.pieces:
            if p.type == 1 and len(p.piece) > 1:
                k += 1
                if k % 5 == 0: p.type = 5
        open(os.path.join(OUT, dst + ".model"), "wb").write(m.SerializeToString())
        SP_MODELS[dst] = {}


def shim(vocab_file, sp, **extra):
    """Stands in for a slow tokenizer: the converters only read these attributes."""
    ns = types.SimpleNamespace(vocab_file=vocab_file, convert_tokens_to_ids=sp.piece_to_id,
                               convert_ids_to_tokens=sp.id_to_piece, add_prefix_space=True, legacy=True)
    for k, v in extra.items(): setattr(ns, k, v)
    return ns


def build_hf():
    out = {}
    # T5 layout (what Kosmos-X names): unigram + T5Converter, plus <image>, </image> as in Kosmos-X.
    p = os.path.join(OUT, "uni_nmt_nfkc.model"); sp = spm.SentencePieceProcessor(model_file=p)
    tok = T5Converter(shim(p, sp, _extra_ids=0)).converted()
    tok.add_special_tokens([AddedToken("<image>", normalized=False), AddedToken("</image>", normalized=False)])
    out["hf_t5_unigram"] = tok
    # Llama layout: BPE with byte fallback + LlamaConverter (legacy normalizer, ByteFallback decoder).
    p = os.path.join(OUT, "bpe_identity_bytefb.model"); sp = spm.SentencePieceProcessor(model_file=p)
    out["hf_llama_bpe"] = LlamaConverter(shim(p, sp)).converted()
    # XLM-R layout (fairseq offset) from a unigram model.
    p = os.path.join(OUT, "uni_identity_bytefb.model"); sp = spm.SentencePieceProcessor(model_file=p)
    out["hf_xlmr_unigram"] = XLMRobertaConverter(shim(p, sp, convert_tokens_to_ids=lambda t: {"<s>": 0, "</s>": 2}[t])).converted()
    # Kosmos-2: XLM-R layout (fairseq offset) over a BPE model, then transformers' own
    # Kosmos2Processor adds its tag and <patch_index_NNNN> tokens, so order and ids are its own.
    from transformers import XLMRobertaTokenizer, CLIPImageProcessor, Kosmos2Processor
    p = os.path.join(OUT, "bpe_nmt_nfkc.model"); sp = spm.SentencePieceProcessor(model_file=p)
    base = XLMRobertaConverter(shim(p, sp, convert_tokens_to_ids=lambda t: {"<s>": 0, "</s>": 2}[t])).converted()
    proc = Kosmos2Processor(image_processor=CLIPImageProcessor(), tokenizer=XLMRobertaTokenizer(tokenizer_object=base))
    out["hf_kosmos2_bpe"] = proc.tokenizer.backend_tokenizer
    for name, tok in out.items():
        tok.save(os.path.join(OUT, name + ".tokenizer.json"), pretty=False)
    return out


def slow_tokenizer_ids(sp, text, added, piece_to_id):
    """transformers' slow (SentencePiece-backed) tokenizer path: split on added tokens with its
    own Trie, apply lstrip/rstrip to the neighbours (tokenization_python.py, tokenize), encode each
    remaining chunk with sentencepiece, and map pieces to ids."""
    from transformers.tokenization_python import Trie
    trie = Trie()
    for t in added: trie.add(t)
    toks = trie.split(text)
    for i, t in enumerate(toks):
        if t in added:
            lstrip, rstrip, _ = added[t]
            if rstrip and i + 1 < len(toks): toks[i + 1] = toks[i + 1].lstrip()
            if lstrip and i > 0: toks[i - 1] = toks[i - 1].rstrip()
    ids = []
    for t in toks:
        if t in added: ids.append(added[t][2])
        else: ids.extend(piece_to_id(p) for p in sp.encode(t, out_type=str))
    return ids


def layered_cases(corpus):
    """Kosmos-X (T5 SentencePiece + <image>, </image> after the vocabulary) and Kosmos-2 over a
    SentencePiece model (XLM-R fairseq ids + Kosmos2Processor tokens)."""
    out = {}
    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "uni_nmt_nfkc.model"))
    n = sp.get_piece_size()
    added = {"<image>": (False, False, n), "</image>": (False, False, n + 1)}
    out["kosmosx_sp"] = {"file": "uni_nmt_nfkc.model", "layout": "kosmosx", "vocab_size": n + 2,
                         "ids": [slow_tokenizer_ids(sp, s, added, sp.piece_to_id) for s in corpus]}
    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "bpe_nmt_nfkc.model"))
    n = sp.get_piece_size()
    fairseq = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}  # tokenization_xlm_roberta (v4)
    def xlmr_id(piece):
        if piece in fairseq: return fairseq[piece]
        i = sp.piece_to_id(piece)
        return i + 1 if i else 3
    added = {t: (False, False, i) for t, i in fairseq.items()}
    added["<mask>"] = (True, False, n + 1)
    tags = ["</doc>", "<image>", "</image>", "</chunk>", "</line>", "<phrase>", "</phrase>", "<object>",
            "</object>", "</delimiter_of_multi_objects/>", "<grounding>"]
    for k, t in enumerate(tags + [f"<patch_index_{x:04d}>" for x in range(1024)]):
        added[t] = (True, False, n + 2 + k)
    out["kosmos2_sp"] = {"file": "bpe_nmt_nfkc.model", "layout": "kosmos2", "vocab_size": n + 2 + len(tags) + 1024,
                         "ids": [slow_tokenizer_ids(sp, s, added, xlmr_id) for s in corpus]}
    return out


def b64(s):
    import base64
    return base64.b64encode(s.encode("utf-8")).decode("ascii")


def b64_unless(decoded, original):
    """null when the decoded text is the input itself (keeps the fixture small)."""
    return None if decoded == original else b64(decoded)


def main():
    train_all()
    hf = build_hf()
    corpus = stress_corpus()
    corpus += ["<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object>.",
               "<phrase>x</phrase> <object><patch_index_0000></delimiter_of_multi_objects/><patch_index_1023></object></doc>",
               "</chunk></line> <mask> text"]
    # Strings also as base64 UTF-8: Foundation's JSON reader on Linux drops U+FEFF inside strings.
    import base64
    cases = {"strings": corpus, "strings_b64": [b64(s) for s in corpus], "models": {}}
    for name in SP_MODELS:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, name + ".model"))
        ids = [sp.encode(s) for s in corpus]
        cases["models"][name] = {"file": name + ".model", "ids": ids, "decoded_b64": [b64_unless(sp.decode(i), t) for i, t in zip(ids, corpus)],
                                 "pieces": None, "vocab_size": sp.get_piece_size()}
    for name, tok in hf.items():
        encs = [tok.encode(s, add_special_tokens=False).ids for s in corpus]
        with_special = [tok.encode(s).ids for s in corpus[:40]]
        cases["models"][name] = {"file": name + ".tokenizer.json", "ids": encs,
                                 "decoded_b64": [b64_unless(tok.decode(i, skip_special_tokens=False), t) for i, t in zip(encs, corpus)],
                                 
                                 "ids_with_special": with_special, "vocab_size": tok.get_vocab_size()}
    cases["layered"] = layered_cases(corpus)
    with open(os.path.join(OUT, "parity.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))
    for fn in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, fn)):>9}  {fn}")


if __name__ == "__main__":
    main()
