#!/usr/bin/env python3
"""Parity fixtures for Kosmos-2.5 (transformers' Kosmos2_5ForConditionalGeneration, its processor, both image
processor backends, and the documented `<ocr>` post-processing).

Usage (from the repository root): /work/benchvenv/bin/python scripts/reference/kosmos2_5_reference.py [OUT_DIR]
Default OUT_DIR: Tests/Fixtures/kosmos2_5. Needs torch, torchvision, transformers, tokenizers, safetensors, numpy,
pillow (requirements.txt pins the versions used). Deterministic: fixed seeds, one torch thread, no network.

Writes
  tiny/            a random Kosmos-2.5 (float32, tied head) + its processor, all via save_pretrained: config.json,
                   generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
                   processor_config.json (transformers 5 nests the image processor config in processor_config.json;
                   it writes no preprocessor_config.json).
  tiny-untied/     the same model with text_config.tie_word_embeddings false and its own random lm_head
                   (config.json + model.safetensors only).
  images/*.png     deterministic inputs (tall, wide, tiny, big, grayscale L, RGBA with varying alpha, 128x128).
  processor.safetensors + processor.json   image processor outputs for both backends, a shape table (43 (h, w) at
                   max_patches 4096 and 64, including sizes where the double-precision formula floors below exact
                   arithmetic, e.g. 49x49 -> 7x7 patches at 64), max_patches 4096 summaries, PIL's alpha-composite-on-
                   white table.
  model.safetensors + model.json           processor text outputs, logits, image embeddings, vision states,
                   greedy generation (+ per-step logits), untied-head logits, tokenizer encode/decode cases.
  ocr_postprocess.json                     the documented <ocr> post-processing on 20+ inputs.

What the real microsoft/kosmos-2.5 tokenizer looks like, and where that comes from (the checkpoint itself cannot be
downloaded here):
  * transformers tests/models/kosmos2_5/test_processor_kosmos2_5.py (test_full_processor) expects, for the real
    checkpoint, input_ids == [0, 100283] + [0] * 2048 + [100284] + [100288] for "<md>" ([100282] for "<ocr>"),
    image_embeds_position_mask == [0, -1] + [1] * 2048 + [-1] + [0], attention_mask all ones. So <s> = 0 is also the
    image placeholder token, <image> = 100283, </image> = 100284, <ocr> = 100282, <md> = 100288, and the tokenizer
    adds no BOS/EOS of its own (the processor writes "<s>" into the prompt string).
  * The ids are the fairseq dictionary of the original code (github.com/microsoft/unilm, kosmos-2.5/): fairseq puts
    <s>=0, <pad>=1, </s>=2, <unk>=3 first; dict.txt lists the cl100k_base (tiktoken) ranks "0".."100276", so BPE rank
    r has id r + 4 (ids 4..100280); tasks/generation.py then adds "<mask>" (100281) and data/utils.py's
    SPECIAL_SYMBOLS in order: <ocr> 100282, <image> 100283, </image> 100284, </chunk> 100285, <bbox> 100286,
    </bbox> 100287, <md> 100288, then for i in range(4096): <x_i> = 100289 + 2i, <y_i> = 100290 + 2i (interleaved).
    The last id is 108480, matching Kosmos2_5TextConfig.vocab_size = 108481. So the real model has 4096 x and 4096
    y coordinate tokens, not 1024.
  * Which added tokens are "special" (removed by decode(skip_special_tokens=True)): the model docstring's example
    output, decoded with skip_special_tokens=True, still begins "<ocr><bbox><x_53><y_573>..." with the
    "<s><image><s>*2048</image>" prefix gone, so <s>, <image>, </image> (and </s>, <pad>, <unk>) are special and
    <ocr>, <bbox>, </bbox>, <x_N>, <y_N> are not. <md> and </chunk> are taken to be like <ocr>/<bbox> (not special)
    and <mask> special: guesses, nothing shows them.
  * Kosmos2_5Processor reads tokenizer.boi_token, tokenizer.eoi_token, tokenizer.image_token (its comments:
    "<image>", "</image>", "<s>"). In transformers 5 any tokenizer_config.json key ending in "_token" becomes such an
    attribute; save_pretrained writes them as top-level "boi_token"/"eoi_token"/"image_token" keys. The real
    tokenizer_config.json was not available to check how it spells them.
  * The tiny tokenizer here keeps that layout at small size: Split (cl100k regex, Isolated) + ByteLevel (no regex)
    pre-tokenizer, ByteLevel decoder, BPE with ignore_merges, no post-processor; <s> <pad> </s> <unk> = 0..3, 1500
    trained byte-level BPE tokens = 4..1503, <mask> = 1504, <ocr> 1505, <image> 1506, </image> 1507, </chunk> 1508,
    <bbox> 1509, </bbox> 1510, <md> 1511, then <x_i> = 1512 + 2i, <y_i> = 1513 + 2i for i < 1024 (vocab 3560).
    1024 coordinates per axis instead of 4096 keeps the fixtures small; 1024 = 16 * 64 is the largest resized side
    the tiny processor (max_patches 64) can produce, so every coordinate it can mean has a token. (cl100k's unused
    and special ranks 100256..100276 -> ids 100260..100280 of the real file have no counterpart here.)

Image conversion (transformers 5.24, both backends, PIL input): image_transforms.convert_to_rgb. If the image has an
alpha band or a "transparency" entry (RGBA, LA, P with transparency) it is converted to RGBA and
PIL.Image.alpha_composite'd over opaque white, then converted to RGB; otherwise image.convert("RGB") (L -> R=G=B).
For an opaque white background PIL's integer alpha_composite equals round-half-up((v * a + 255 * (255 - a)) / 255)
for every (v, a) pair; processor.safetensors `alpha_composite_white` [alpha, value] is that table, from PIL itself.

The two image processor backends (the processor's default, AutoProcessor/AutoImageProcessor, is the torchvision one):
  Kosmos2_5ImageProcessor (torchvision): image -> float32; mean over the whole image (C,H,W); std = torch.std
    (unbiased, N-1); std' = max(std, 1/sqrt(N)); (x - mean) / std' via torchvision normalize. Same-size images are
    normalized as a stacked batch (statistics still per image).
  Kosmos2_5ImageProcessorPil (PIL): same with numpy float32 np.mean / np.std (biased, N). Means can also differ in the
    last bits (different summation orders).
  Both then: scale = sqrt(max_patches * (16 / H) * (16 / W)) (double, in that order); rows = max(min(floor(scale * H
  / 16), max_patches), 1); cols likewise with W; torch.nn.functional.interpolate(normalized image, size=(16 rows,
  16 cols), mode="bilinear", align_corners=False, antialias=True) in float32; 16x16 patches in row-major patch order,
  each flattened as (py, px, channel) i.e. channel fastest; each row prefixed by (row + 1, col + 1) as floats; zero
  rows pad to max_patches. The image attention_mask is (row sum != 0).
  Kosmos2_5Processor.__call__ overwrites the image attention_mask with the text one, and the model recomputes the
  patch mask itself from flattened_patches.sum(-1) != 0.

Model facts these fixtures bake in (modeling_kosmos2_5.py, 5.24): vision = Pix2Struct-style T5 encoder (RMSNorm
without bias or mean, eps 1e-6; gated gelu_new MLP; no attention biases; scaling head_dim**-0.5; padded patches
masked as keys only), row/column embedders indexed by the two id columns; final RMSNorm; then F.normalize(dim=-1)
(L2, eps 1e-12); projection: dense(vision) concatenated with the learned latent_query as keys/values, latent_query as
queries, no mask (padded patches take part); text = Kosmos-2 style decoder (pre-LN, LayerNorm eps 1e-5, erf gelu,
ffn_layernorm inside the FFN, embed scale sqrt(embed_dim), sinusoidal positions with offset 2 and padding_idx 1 so
position ids start at 2 and skip pad tokens) plus segment_emb: segment 1 wherever image_embeds_position_mask != 0
(i.e. <image>, the image slots AND </image>), 0 elsewhere and for every generated token.
Every model output here comes from Kosmos2_5ForConditionalGeneration.from_pretrained(dir, attn_implementation="eager")
and AutoProcessor.from_pretrained("tiny") (torchvision backend), i.e. the saved files are what is tested.
Whether lm_head is tied follows text_config.tie_word_embeddings: the top-level Kosmos2_5Config.tie_word_embeddings is
ignored (top-level false + text true still ties; tiny-untied sets both false).

Processor pitfall: Kosmos2_5Processor has a class-level images_kwargs {"max_patches": 4096} that is passed to the
image processor on every call and overrides the image processor's own (saved) max_patches, so processor(images=...,
text=...) gives 4096 patches even when processor_config.json says 64. Every processor call here passes
max_patches=64 explicitly (the tiny vision model only has 128 row/column embeddings).
"""
import json
import math
import os
import random
import re
import shutil
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

import transformers
from transformers import (AutoImageProcessor, AutoProcessor, Kosmos2_5Config,
                          Kosmos2_5ForConditionalGeneration, Kosmos2_5ImageProcessor, Kosmos2_5ImageProcessorPil,
                          Kosmos2_5Processor, PreTrainedTokenizerFast)
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import SizeDict
from transformers.models.kosmos2_5.modeling_kosmos2_5 import Kosmos2_5LayerNorm
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
torch.set_num_threads(1)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "Fixtures", "kosmos2_5")
TINY = os.path.join(OUT, "tiny")
UNTIED = os.path.join(OUT, "tiny-untied")
IMAGES = os.path.join(OUT, "images")
GENERATOR = "scripts/reference/kosmos2_5_reference.py"

MAX_PATCHES = 64           # tiny processor default (and explicit in every processor call, see docstring)
NUM_IMAGE_TOKENS = 16      # == latent_query_num
N_COORDS = 1024            # per axis (the real tokenizer has 4096)
BPE_SIZE = 1500            # trained byte-level BPE tokens (ids 4 .. 4 + BPE_SIZE - 1)
FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# Order of the original task's added symbols (kosmos-2.5/kosmos2_5/data/utils.py, after "<mask>").
KOSMOS_SYMBOLS = ["<ocr>", "<image>", "</image>", "</chunk>", "<bbox>", "</bbox>", "<md>"]
SPECIAL_SYMBOLS = {"<mask>", "<image>", "</image>"}   # removed by skip_special_tokens (see docstring)

# cl100k_base's split pattern, as GPT-style tokenizer.json files carry it.
CL100K = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")


# ----------------------------------------------------------------------------------------------------- tokenizer
def training_text(rng, n=5000):
    """Receipts, forms and markdown-ish lines: what Kosmos-2.5 reads and writes."""
    vocab = ("subtotal total tax cash change card payment invoice receipt date time qty price item amount due "
             "balance order number customer address phone email page section table figure chapter summary notes "
             "report quarterly revenue growth market share the of and to in for with on by from at as is are was "
             "reading document text image column row line header footer title abstract introduction method result "
             "conclusion reference appendix figure caption signature approved").split()
    caps = ["Total", "Subtotal", "TAX", "CASH", "Invoice", "Date", "Page", "Table", "Figure", "Summary", "NOTE"]
    other = ["café", "naïve", "Größe", "東京", "文書", "領収書", "한국어", "مرحبا", "שלום", "€", "£", "¥", "°C", "№", "😀",
             "✓", "—", "…", "½"]
    marks = ["#", "##", "###", "-", "*", "**", "|", "---", ":", ";", ",", ".", "(", ")", "[", "]", "/", "%", "$", "@",
             "&", "+", "=", "'s", "'re", "n't", "\"", "_", "<", ">"]
    out = []
    for _ in range(n):
        parts = []
        kind = rng.random()
        if kind < 0.15:
            parts.append(rng.choice(["#", "##", "-", "*", "|", "1."]) + " ")
        for _ in range(rng.randint(2, 14)):
            r = rng.random()
            if r < 0.5: parts.append(rng.choice(vocab))
            elif r < 0.6: parts.append(rng.choice(caps))
            elif r < 0.75: parts.append(rng.choice([str(rng.randint(0, 99)), f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}",
                                                    f"{rng.randint(1, 31):02d}/{rng.randint(1, 12):02d}/20{rng.randint(10, 30)}",
                                                    f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}"]))
            elif r < 0.9: parts.append(rng.choice(marks))
            else: parts.append(rng.choice(other))
            parts.append(rng.choice([" ", " ", " ", " ", "", "  ", "\t", " | "]))
        out.append("".join(parts) + rng.choice(["\n", "\n", "", "\n\n", " \n"]))
    return out


def build_tokenizer():
    rng = random.Random(2509)
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CL100K), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=len(FAIRSEQ_SPECIALS) + BPE_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=FAIRSEQ_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(rng), trainer=trainer)
    assert tok.get_vocab_size() == len(FAIRSEQ_SPECIALS) + BPE_SIZE, tok.get_vocab_size()
    assert [tok.token_to_id(t) for t in FAIRSEQ_SPECIALS] == [0, 1, 2, 3]
    added = ["<mask>"] + KOSMOS_SYMBOLS
    for i in range(N_COORDS):
        added += [f"<x_{i}>", f"<y_{i}>"]
    # One add_tokens call per kind would reorder nothing, but keep ids explicit: add one at a time, in order.
    for t in added:
        tok.add_tokens([AddedToken(t, special=t in SPECIAL_SYMBOLS, normalized=False)])
    base = len(FAIRSEQ_SPECIALS) + BPE_SIZE
    assert tok.token_to_id("<mask>") == base and tok.token_to_id("<md>") == base + 7
    assert tok.token_to_id("<x_0>") == base + 8 and tok.token_to_id(f"<y_{N_COORDS - 1}>") == base + 7 + 2 * N_COORDS
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", boi_token="<image>", eoi_token="</image>", image_token="<s>")


# ------------------------------------------------------------------------------------------------------- model
def tiny_config(vocab_size, tied):
    return Kosmos2_5Config(
        text_config=dict(vocab_size=vocab_size, embed_dim=32, layers=2, ffn_dim=64, attention_heads=4,
                         max_position_embeddings=256, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                         tie_word_embeddings=tied),
        vision_config=dict(hidden_size=32, patch_embed_hidden_size=768, intermediate_size=64, head_dim=8,
                           num_attention_heads=4, num_hidden_layers=2, max_num_patches=128),
        latent_query_num=NUM_IMAGE_TOKENS, tie_word_embeddings=tied)


def randomize(model, seed):
    """Every parameter gets non-trivial values: Linear weights N(0, 4/fan_in), biases N(0, 0.1^2), LayerNorm/RMSNorm
    weights 1 + N(0, 0.25^2) and LayerNorm biases N(0, 0.1^2), token embeddings N(0, 0.05^2) (x sqrt(32) in forward),
    row/column embedders N(0, 0.3^2), segment_emb N(0, 0.5^2), latent_query N(0, 1). (Smaller embeddings or weights
    make the tied random model repeat one token forever; these give varied greedy output.)"""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda p, std, mean=0.0: p.copy_(mean + std * torch.randn(p.shape, generator=g))
    norm_params = set()
    for module in model.modules():
        if isinstance(module, (torch.nn.LayerNorm, Kosmos2_5LayerNorm)):
            norm_params.update(id(p) for p in module.parameters(recurse=False))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in norm_params: rnd(p, 0.25, 1.0) if name.endswith("weight") else rnd(p, 0.1)
            elif name.endswith("latent_query"): rnd(p, 1.0)
            elif "segment_emb" in name: rnd(p, 0.5)
            elif "embed_tokens" in name: rnd(p, 0.05)
            elif "row_embedder" in name or "column_embedder" in name: rnd(p, 0.3)
            elif p.ndim == 2: rnd(p, 2.0 / math.sqrt(p.shape[1]))
            else: rnd(p, 0.1)


# ------------------------------------------------------------------------------------------------------ images
def make_images():
    rs = np.random.RandomState(2509)

    def rgb(w, h, noise=18.0):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        fx, fy = x / max(w - 1, 1), y / max(h - 1, 1)
        base = np.stack([255 * fx, 255 * fy, 128 + 100 * np.sin(6.0 * fx + 4.0 * fy)], -1)
        return np.clip(base + rs.normal(0, noise, (h, w, 3)), 0, 255).round().astype(np.uint8)

    def page(w, h):   # light paper, dark "words" on lines, a coloured header band
        img = np.full((h, w, 3), 236.0) + rs.normal(0, 6, (h, w, 3))
        img[6:20, 8:w - 8] = [40, 70, 160]
        for top in range(30, h - 12, 14):
            x = 10 + rs.randint(0, 12)
            while x < w - 20:
                ww = rs.randint(6, 40)
                ink = rs.randint(0, 70)
                img[top:top + 8, x:min(x + ww, w - 10)] = ink + rs.normal(0, 10, (8, min(x + ww, w - 10) - x, 3))
                x += ww + rs.randint(4, 9)
        return np.clip(img, 0, 255).round().astype(np.uint8)

    y, x = np.mgrid[0:61, 0:97].astype(np.float64)
    gray = np.clip(128 + 110 * np.cos(np.hypot(x - 40, y - 25) / 7.0) + rs.normal(0, 15, x.shape), 0, 255)
    rgba = np.concatenate([rgb(45, 70, 25), np.zeros((70, 45, 1), np.uint8)], -1)
    alpha = np.clip(np.linspace(-30, 285, 45)[None, :] + rs.normal(0, 20, (70, 45)), 0, 255).round()
    alpha[:, :3] = 0
    alpha[:, -3:] = 255
    rgba[..., 3] = alpha.astype(np.uint8)
    sq = rgb(128, 128)
    sq[(np.add.outer(np.arange(128) // 16, np.arange(128) // 16) % 2) == 1] //= 2
    images = {
        "tall_rgb": Image.fromarray(rgb(23, 211), "RGB"),
        "wide_rgb": Image.fromarray(rgb(300, 19), "RGB"),
        "tiny_rgb": Image.fromarray(rgb(5, 3, 40), "RGB"),
        "big_rgb": Image.fromarray(page(260, 190), "RGB"),
        "gray_l": Image.fromarray(gray.round().astype(np.uint8), "L"),
        "rgba": Image.fromarray(rgba, "RGBA"),
        "square128_rgb": Image.fromarray(sq, "RGB"),
    }
    os.makedirs(IMAGES, exist_ok=True)
    loaded = {}
    for name, img in images.items():
        path = os.path.join(IMAGES, name + ".png")
        img.save(path, optimize=True)
        loaded[name] = Image.open(path)   # feed what a user would: the decoded file
        loaded[name].load()
        assert loaded[name].mode == img.mode and np.array_equal(np.array(loaded[name]), np.array(img))
    return loaded


# --------------------------------------------------------------------------------------------------- processor
def image_outputs(ip, image, **kw):
    """ip(image) for one PIL image -> dict of plain tensors/ints (one image, batch dim dropped)."""
    out = ip(image, return_tensors="pt", **kw)
    return {"flattened_patches": out["flattened_patches"][0].contiguous(),
            "attention_mask": out["attention_mask"][0].contiguous(),
            **{k: int(out[k][0]) for k in ("width", "height", "rows", "cols")}}


def float_boundary_cases(limit=300, pairs_wanted=7):
    """(h, w, max_patches, which, formula, exact) for the first `pairs_wanted` (h, w) where the processor's
    double-precision formula floors one lower than exact arithmetic (exact = floor(sqrt(max_patches * a / b)) =
    isqrt(max_patches * a // b)); e.g. a 49x49 image gets 7x7 patches at max_patches 64, not 8x8."""
    found, pairs = [], []
    for h in range(1, limit):
        for w in range(1, limit):
            for mp in (64, 4096):
                scale = math.sqrt(mp * (16 / h) * (16 / w))
                for which, a, b in (("rows", h, w), ("cols", w, h)):
                    got, exact = math.floor(scale * a / 16), math.isqrt(mp * a // b)
                    if got != exact:
                        found.append((h, w, mp, which, got, exact))
                        if (h, w) not in pairs: pairs.append((h, w))
            if len(pairs) >= pairs_wanted:
                return [f for f in found if (f[0], f[1]) in pairs]
    return found


def processor_fixture(images, tensors, index):
    pil_ip = AutoImageProcessor.from_pretrained(TINY, backend="pil")
    tv_ip = AutoImageProcessor.from_pretrained(TINY)
    assert isinstance(pil_ip, Kosmos2_5ImageProcessorPil) and type(tv_ip) is Kosmos2_5ImageProcessor
    assert pil_ip.max_patches == tv_ip.max_patches == MAX_PATCHES
    backends = {"pil": pil_ip, "torchvision": tv_ip}
    index["calls"] = {
        "pil": "AutoImageProcessor.from_pretrained('tiny', backend='pil')(Image.open(png), return_tensors='pt')",
        "torchvision": "AutoImageProcessor.from_pretrained('tiny')(Image.open(png), return_tensors='pt')",
        "note": "max_patches 64 comes from tiny/processor_config.json here; the processor's __call__ would force "
                "4096 unless max_patches is passed (see model.json)."}
    index["images"] = {}
    for name, img in images.items():
        entry = {"file": f"images/{name}.png", "mode": img.mode, "width": img.width, "height": img.height}
        for bname, ip in backends.items():
            o = image_outputs(ip, img)
            assert o["flattened_patches"].shape == (MAX_PATCHES, 770)
            n = o["rows"] * o["cols"]
            assert int(o["attention_mask"].sum()) == n and not o["flattened_patches"][n:].any()
            for k in ("flattened_patches", "attention_mask"):
                tensors[f"{name}/{bname}/{k}"] = o[k]
            for k in ("width", "height", "rows", "cols"):
                tensors[f"{name}/{bname}/{k}"] = torch.tensor([o[k]])
            entry[bname] = {k: o[k] for k in ("width", "height", "rows", "cols")}
        a, b = tensors[f"{name}/pil/flattened_patches"], tensors[f"{name}/torchvision/flattened_patches"]
        entry["max_abs_diff_pil_vs_torchvision"] = float((a - b).abs().max())
        if img.mode != "RGB":
            tensors[f"{name}/rgb_uint8"] = torch.from_numpy(convert_to_rgb(img, return_numpy=True).copy())
            entry["rgb_uint8"] = "HWC uint8 after transformers' convert_to_rgb (what both backends normalize)"
        index["images"][name] = entry

    # PIL's alpha_composite over opaque white, for every (alpha, value).
    v = np.arange(256, dtype=np.uint8)
    grid = np.zeros((256, 256, 4), np.uint8)
    grid[..., 0] = grid[..., 1] = grid[..., 2] = v[None, :]
    grid[..., 3] = v[:, None]
    white = Image.new("RGBA", (256, 256), (255, 255, 255, 255))
    table = np.array(Image.alpha_composite(white, Image.fromarray(grid, "RGBA")).convert("RGB"))[..., 0]
    a, x = np.arange(256)[:, None], np.arange(256)[None, :]
    assert np.array_equal(table, np.floor((x * a + 255 * (255 - a)) / 255 + 0.5))
    tensors["alpha_composite_white"] = torch.from_numpy(table.copy())
    index["alpha_composite_white"] = ("[alpha, value] uint8: RGB of PIL.Image.alpha_composite(white, (v, v, v, alpha))"
                                      " == round-half-up((v * alpha + 255 * (255 - alpha)) / 255)")

    # max_patches 4096 on two images, PIL backend (and torchvision for comparison): sums + 3 full rows.
    index["max_patches_4096"] = {}
    for name in ("tall_rgb", "big_rgb"):
        entry = {}
        for bname, ip in backends.items():
            o = image_outputs(ip, images[name], max_patches=4096)
            fp = o["flattened_patches"].double()
            n = o["rows"] * o["cols"]
            picks = [0, (n - 1) // 2, n - 1]
            entry[bname] = {**{k: o[k] for k in ("width", "height", "rows", "cols")}, "real_patches": n,
                            "sum": float(fp.sum()), "sum_of_squares": float((fp * fp).sum()),
                            "sum_pixels_only": float(fp[:, 2:].sum()), "row_indices": picks,
                            "attention_mask_sum": int(o["attention_mask"].sum())}
            tensors[f"max_patches_4096/{name}/{bname}/rows"] = o["flattened_patches"][picks].contiguous()
        index["max_patches_4096"][name] = entry

    # Shape table: the processor's own resize arithmetic.
    pairs = [(1, 1), (1, 2), (2, 1), (3, 5), (5, 3), (1, 5000), (5000, 1), (1, 65536), (65536, 1), (16, 16), (15, 15),
             (17, 17), (17, 33), (33, 17), (31, 16), (16, 4096), (4096, 16), (64, 4096), (4096, 64), (100, 1),
             (211, 23), (19, 300), (190, 260), (128, 128), (1023, 1025), (1024, 1024), (1000, 1414), (1414, 1000),
             (3000, 2000), (2000, 3000), (720, 1280), (1080, 1920), (8, 2048), (2048, 8), (7, 9000), (9000, 7)]
    boundary = float_boundary_cases()
    for h, w, *_ in boundary:
        if (h, w) not in pairs: pairs.append((h, w))
    table_rows = []
    for h, w in pairs:
        row = {"height": h, "width": w}
        for mp in (4096, 64):
            res = {}
            if h * w <= 120_000:   # full pipeline from a synthetic PIL image, both backends
                img = Image.fromarray(((np.arange(h * w * 3) * 37) % 251).astype(np.uint8).reshape(h, w, 3), "RGB")
                for bname, ip in backends.items():
                    o = image_outputs(ip, img, max_patches=mp)
                    res[bname] = {k: o[k] for k in ("width", "height", "rows", "cols")}
                src = "image_processor(PIL image)"
            else:                  # the library's extract step on a cheap 1-channel float image
                size = SizeDict(height=16, width=16)
                _, rw, rh, r, c = pil_ip.extract_flattened_patches(np.zeros((1, h, w), np.float32), mp, size)
                res["pil"] = {"width": rw, "height": rh, "rows": r, "cols": c}
                _, rw, rh, r, c = tv_ip.extract_flattened_patches(torch.zeros(1, 1, h, w), mp, size)
                res["torchvision"] = {"width": rw, "height": rh, "rows": r, "cols": c}
                src = "extract_flattened_patches(zeros [1, H, W])"
            assert res["pil"] == res["torchvision"], (h, w, mp, res)
            row[f"max_patches_{mp}"] = {**res["pil"], "source": src}
        b = [f for f in boundary if (f[0], f[1]) == (h, w)]
        if b:
            row["float_boundary"] = [{"max_patches": f[2], "which": f[3], "formula": f[4], "exact": f[5]} for f in b]
        table_rows.append(row)
    index["shape_table"] = table_rows
    index["shape_formula"] = ("scale = sqrt(max_patches * (16 / H) * (16 / W)) in double, that order; rows = max(min("
                              "floor(scale * H / 16), max_patches), 1); cols = max(min(floor(scale * W / 16), "
                              "max_patches), 1); resized = (16 rows, 16 cols). float_boundary rows: the double "
                              "formula floors below exact arithmetic; a port must reproduce the double result.")


# ------------------------------------------------------------------------------------------------------- model
def model_fixture(images, proc_tensors, tensors, index, tokenizer):
    processor = AutoProcessor.from_pretrained(TINY)
    assert type(processor.image_processor) is Kosmos2_5ImageProcessor and processor.num_image_tokens == NUM_IMAGE_TOKENS
    model = Kosmos2_5ForConditionalGeneration.from_pretrained(TINY, attn_implementation="eager").eval()
    assert model.config._attn_implementation == "eager"
    assert model.vision_model.config._attn_implementation == "eager"
    assert model.text_model.config._attn_implementation == "eager"

    # Default processor call: 4096 patches whatever processor_config.json says.
    forced = processor(images=images["tall_rgb"], text="<ocr>")
    index["processor_default_max_patches"] = {"call": "processor(images=img, text='<ocr>')",
                                              "flattened_patches_shape": list(forced["flattened_patches"].shape)}

    names = ["tall_rgb", "tall_rgb", "big_rgb", "big_rgb"]
    prompts = ["<ocr>", "<md>", "<ocr>", "<md>"]
    inputs = processor(images=[images[n] for n in names], text=prompts, max_patches=MAX_PATCHES)
    index["processor_call"] = ("processor = AutoProcessor.from_pretrained('tiny'); inputs = processor(images=[tall, "
                               "tall, big, big], text=['<ocr>', '<md>', '<ocr>', '<md>'], max_patches=64)")
    index["rows"] = [{"image": n, "prompt": p} for n, p in zip(names, prompts)]
    index["processor_output_keys"] = list(inputs.keys())
    for i, n in enumerate(names):   # the patches are the processor fixture's torchvision ones
        assert torch.equal(inputs["flattened_patches"][i], proc_tensors[f"{n}/torchvision/flattened_patches"])
    index["flattened_patches"] = "processor.safetensors '<image>/torchvision/flattened_patches' for each row's image"
    for k in ("input_ids", "attention_mask", "image_embeds_position_mask", "width", "height"):
        tensors[f"inputs/{k}"] = inputs[k].contiguous()
    height, width = inputs.pop("height"), inputs.pop("width")   # as the documented examples do

    with torch.no_grad():
        out = model(**inputs)
        gen = model.generate(**inputs, max_new_tokens=24, do_sample=False, num_beams=1,
                             return_dict_in_generate=True, output_logits=True, output_scores=True)
        plain = model.generate(**inputs, max_new_tokens=24, do_sample=False, num_beams=1)
        nocache = model.generate(**inputs, max_new_tokens=24, do_sample=False, num_beams=1, use_cache=False)
    L = inputs["input_ids"].shape[1]
    logits = out.logits
    tensors["logits_full"] = logits[[0, 3]].contiguous()
    tensors["logits_last"] = logits[:, -1].contiguous()
    assert torch.equal(logits[0, :-1], logits[1, :-1]) or (logits[0, :-1] - logits[1, :-1]).abs().max() < 1e-5
    tensors["image_embeds"] = out.image_embeds[[0, 2]].contiguous()
    tensors["vision_last_hidden_state"] = out.vision_model_output.last_hidden_state[0].contiguous()
    seq = gen.sequences
    assert torch.equal(seq, plain)
    tensors["generated"] = seq[:, L:].contiguous()
    tensors["step_logits"] = torch.stack(gen.logits[:3]).contiguous()
    scores_equal = all(torch.equal(a, b) for a, b in zip(gen.logits[:3], gen.scores[:3]))
    if not scores_equal:
        tensors["step_scores"] = torch.stack(gen.scores[:3]).contiguous()
    assert torch.allclose(gen.logits[0], logits[:, -1], atol=1e-5)
    index["tensors"] = {
        "inputs/*": "processor output (int64): input_ids/attention_mask/image_embeds_position_mask [4, L], width/height [4]",
        "logits_full": "[2, L, vocab] float32: rows 0 (tall, <ocr>) and 3 (big, <md>) of model(**inputs).logits; rows 1 "
                       "and 2 share all but the last position with rows 0 and 2 (same image, one-token prompts)",
        "logits_last": "[4, vocab]: last-position logits of all four rows",
        "image_embeds": "[2, 16, 32]: out.image_embeds (after image_to_text_projection) for tall_rgb and big_rgb",
        "vision_last_hidden_state": "[64, 32]: vision model last_hidden_state (after its final RMSNorm, before "
                                    "F.normalize) for tall_rgb",
        "generated": "[4, <=24] new tokens of model.generate(**inputs, max_new_tokens=24, do_sample=False, "
                     "num_beams=1) (use_cache default True); rows that emit </s> (2) are padded with <pad> (1)",
        "step_logits": "[3, 4, vocab]: generate(..., return_dict_in_generate=True, output_logits=True).logits[:3]",
        "step_scores": "[3, 4, vocab]: .scores[:3] (processed), only written when they differ from step_logits",
        "untied/*": "tiny-untied on row 0's inputs: logits [1, L, vocab], generated [1, 8]",
    }
    index["generate_call"] = ("height, width = inputs.pop('height'), inputs.pop('width'); model.generate(**inputs, "
                              "max_new_tokens=24, do_sample=False, num_beams=1) with model = "
                              "Kosmos2_5ForConditionalGeneration.from_pretrained('tiny', attn_implementation='eager')")
    index["generation_checks"] = {"same_as_without_return_dict": True,
                                  "same_without_cache": bool(torch.equal(nocache, seq)),
                                  "step_scores_equal_logits": bool(scores_equal)}
    index["decoded"] = {"skip_special_tokens": processor.batch_decode(seq, skip_special_tokens=True),
                        "keep_special_tokens": processor.batch_decode(seq, skip_special_tokens=False)}
    index["generation_config"] = {k: v for k, v in model.generation_config.to_diff_dict().items()
                                  if k != "transformers_version"}

    # Untied head.
    untied = Kosmos2_5ForConditionalGeneration.from_pretrained(UNTIED, attn_implementation="eager").eval()
    assert untied.text_model.lm_head.weight.data_ptr() != untied.text_model.model.embed_tokens.weight.data_ptr()
    row0 = {k: v[:1] for k, v in inputs.items()}
    with torch.no_grad():
        tensors["untied/logits"] = untied(**row0).logits.contiguous()
        tensors["untied/generated"] = untied.generate(**row0, max_new_tokens=8, do_sample=False,
                                                      num_beams=1)[:, L:].contiguous()
    assert not torch.allclose(tensors["untied/logits"], logits[:1])

    # A padded batch (text only differs): right padding with <pad> = 1, mask positions padded with 0.
    padded = processor(images=[images["tiny_rgb"], images["wide_rgb"]],
                       text=["<md>", "<ocr><bbox><x_12><y_34><x_567><y_89></bbox>Total 12.50\n"], max_patches=MAX_PATCHES)
    index["padded_batch"] = {"call": "processor(images=[tiny, wide], text=['<md>', '<ocr><bbox><x_12><y_34><x_567>"
                                     "<y_89></bbox>Total 12.50\\n'], max_patches=64)",
                             **{k: padded[k].tolist() for k in ("input_ids", "attention_mask",
                                                                "image_embeds_position_mask", "width", "height")}}

    # Tokenizer encode/decode cases.
    cases = ["<ocr>", "<md>", "<s><image><s><s></image><ocr>", "<bbox><x_0><y_1><x_1023><y_1023></bbox>Total 12.50\n",
             "<x_1024><y_-1><bbox >", "<md># Heading\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", " leading and trailing  ",
             "Größe 東京 مرحبا 😀 ½", "</s><pad><unk><mask></chunk>", "<ocr><ocr>text<md>", "", "\n\n\t"]
    index["tokenizer_cases"] = []
    for s in cases:
        ids = tokenizer(s)["input_ids"]
        index["tokenizer_cases"].append({"text": s, "ids": ids,
                                         "decode": tokenizer.decode(ids),
                                         "decode_skip_special": tokenizer.decode(ids, skip_special_tokens=True)})
    return index


# --------------------------------------------------------------------------------------------- post-processing
# Source: transformers docs/source/en/model_doc/kosmos2_5.md ("AutoModel - OCR Task"), also the microsoft/kosmos-2.5
# model card's ocr.py (https://huggingface.co/microsoft/kosmos-2.5/blob/main/ocr.py). Semantics, in short: drop every
# occurrence of the prompt; with an <md> prompt return the rest unchanged; otherwise find every
# "<bbox><x_\d+><y_\d+><x_\d+><y_\d+></bbox>" (Python re, so \d is any Unicode decimal digit), take the text between
# each match and the next (text before the first match is dropped), keep a line only if x0 < x1 and y0 < y1, scale
# each coordinate as int(c * scale) (truncation toward zero) with scale_width = raw_width / width and scale_height =
# raw_height / height, and emit "x0,y0,x1,y0,x1,y1,x0,y1,<text>" with the text as is (it carries its own "\n").
# In the documented flow width/height are the processor's int64 tensors, so scale = raw / tensor is a float32 tensor
# which torch evaluates as reciprocal-then-multiply: scale = fl32(fl32(1 / processed) * raw); each coordinate is then
# trunc(fl32(c * scale)). `output` below is that (the documented code run as is); `output_float64` (only where it
# differs) uses Python floats raw / processed.
BOX = re.compile(r"<bbox><x_(\d+)><y_(\d+)><x_(\d+)><y_(\d+)></bbox>")


def ocr_post_process(text, prompt, scale_height, scale_width):
    text = text.replace(prompt, "")
    if "<md>" in prompt:
        return text
    pieces = BOX.split(text)   # [before, x0, y0, x1, y1, line, x0, ...]
    result = []
    for k in range(1, len(pieces), 5):
        x0, y0, x1, y1 = (int(v) for v in pieces[k:k + 4])
        line = pieces[k + 4]
        if x0 < x1 and y0 < y1:
            x0, x1 = int(x0 * scale_width), int(x1 * scale_width)
            y0, y1 = int(y0 * scale_height), int(y1 * scale_height)
            result.append(f"{x0},{y0},{x1},{y0},{x1},{y1},{x0},{y1},{line}")
    return "".join(result)


def processed_size(raw_w, raw_h, mp=4096):
    _, w, h, _, _ = Kosmos2_5ImageProcessorPil().extract_flattened_patches(
        np.zeros((1, raw_h, raw_w), np.float32), mp, SizeDict(height=16, width=16))
    return w, h


def documented_scale(raw, processed):
    """The documented flow's scale: python int / int64 tensor. torch evaluates int / tensor as
    tensor.reciprocal() * int, so this is fl32(fl32(1 / processed) * raw), not fl32(raw / processed)."""
    return raw / torch.tensor([processed])


def f32_truncation_case():
    """(raw, processed, c) where int(c * scale) differs between the documented float32 tensor scale and Python floats
    (c * raw / processed an exact integer, so one of them truncates below it)."""
    c = torch.arange(1, N_COORDS)
    for proc in range(16, 1040, 16):
        for raw in range(1, 2 * proc):
            documented = torch.trunc(c * documented_scale(raw, proc))
            exact = (c * raw) % proc == 0
            f64 = torch.tensor([int(k * (raw / proc)) for k in c[exact].tolist()], dtype=documented.dtype)
            d = documented[exact] != f64
            if d.any():
                return raw, proc, int(c[exact][d][0])
    return None


def check_documented_arithmetic():
    """The float32 arithmetic of the documented flow, spelled out (and checked against torch on a grid)."""
    rs = np.random.RandomState(7)
    for _ in range(2000):
        raw, proc, c = int(rs.randint(1, 5000)), int(rs.randint(1, 300)) * 16, int(rs.randint(0, 4096))
        s32 = np.float32(np.float32(1) / np.float32(proc)) * np.float32(raw)
        assert np.float32(s32) == np.float32(documented_scale(raw, proc).item())
        assert int(np.float32(np.float32(c) * s32)) == int(c * documented_scale(raw, proc))


def ocr_cases():
    check_documented_arithmetic()
    raw_w, raw_h = 850, 1100   # a letter-size page scan
    w, h = processed_size(raw_w, raw_h)
    t = f32_truncation_case()
    cases = [
        ("multi_line", "<ocr>", "<ocr><bbox><x_53><y_57><x_169><y_86></bbox>Invoice 42\n<bbox><x_79><y_120><x_464>"
         "<y_152></bbox>BLACK SAKURA 45,455\n<bbox><x_690><y_569><x_810><y_606></bbox>Total 50,000\n"),
        ("no_trailing_newline", "<ocr>", "<ocr><bbox><x_1><y_2><x_30><y_40></bbox>a<bbox><x_5><y_6><x_70><y_80></bbox>b"),
        ("text_before_first_box", "<ocr>", "<ocr>stray header\n<bbox><x_10><y_10><x_20><y_20></bbox>kept\n"),
        ("duplicated_bbox_open", "<ocr>", "<ocr><bbox><bbox><x_10><y_11><x_20><y_21></bbox>dup open\n"),
        ("nested_bbox", "<ocr>", "<ocr><bbox><x_1><y_2><bbox><x_3><y_4><x_50><y_60></bbox></bbox>nested\n"),
        ("missing_coordinate", "<ocr>", "<ocr><bbox><x_10><y_20><x_30></bbox>three coords\n<bbox><x_1><y_1><x_9>"
         "<y_9></bbox>ok\n"),
        ("empty_bbox", "<ocr>", "<ocr><bbox></bbox>nothing\n"),
        ("malformed_tags_join_previous_line", "<ocr>", "<ocr><bbox><x_1><y_1><x_90><y_9></bbox>first\n<bbox><x_10>"
         "y_20><x_30><y_40></bbox>bad y\n<bbox><x_10><y_20><x_30><y_40></bbox >space\n<bbox><x_-5><y_2><x_30><y_40>"
         "</bbox>neg\n<BBOX><x_1><y_1><x_2><y_2></BBOX>upper\n<bbox><x_1><y_1><x_2><y_2><bbox>open twice\n"),
        ("only_malformed", "<ocr>", "<ocr><bbox><x_10><y_20><x_30></bbox>three coords\n<bbox><x_1 ><y_1><x_9><y_9>"
         "</bbox>space in tag\n"),
        ("degenerate_boxes_skipped", "<ocr>", "<ocr><bbox><x_30><y_10><x_30><y_40></bbox>x0==x1\n<bbox><x_40><y_10>"
         "<x_30><y_40></bbox>x0>x1\n<bbox><x_10><y_50><x_30><y_40></bbox>y0>y1\n<bbox><x_1><y_1><x_2><y_2></bbox>ok\n"),
        ("consecutive_boxes_empty_text", "<ocr>", "<ocr><bbox><x_1><y_1><x_5><y_5></bbox><bbox><x_6><y_6><x_9><y_9>"
         "</bbox>second\n"),
        ("coordinates_0_and_max", "<ocr>", f"<ocr><bbox><x_0><y_0><x_{N_COORDS - 1}><y_{N_COORDS - 1}></bbox>corner\n"
         "<bbox><x_0><y_0><x_4095><y_4095></bbox>real max\n<bbox><x_0><y_0><x_99999><y_99999></bbox>beyond vocab\n"),
        ("leading_zeros", "<ocr>", "<ocr><bbox><x_007><y_0010><x_0100><y_00200></bbox>zeros\n"),
        ("unicode_text", "<ocr>", "<ocr><bbox><x_1><y_1><x_90><y_20></bbox>東京都 領収書 ¥1,200\n<bbox><x_1><y_30><x_90>"
         "<y_50></bbox>مرحبا بالعالم שלום\n<bbox><x_1><y_60><x_90><y_80></bbox>😀👍🏽👨‍👩‍👧 e\u0301\n"),
        ("unicode_digits_in_tags", "<ocr>", "<ocr><bbox><x_١٢><y_３><x_٤٥><y_６７></bbox>arabic-indic and fullwidth\n"),
        ("prompt_inside_text", "<ocr>", "<ocr><bbox><x_1><y_1><x_9><y_9></bbox>say <ocr> twice<ocr>\n"),
        ("commas_and_crlf", "<ocr>", "<ocr><bbox><x_1><y_1><x_9><y_9></bbox>1,234,567.89\r\n"),
        ("only_prompt", "<ocr>", "<ocr>"),
        ("empty", "<ocr>", ""),
        ("no_boxes", "<ocr>", "<ocr>plain text without boxes\n"),
        ("md_output", "<md>", "<md># Receipt\n\n| Item | Price |\n|---|---|\n| Tea | 3.50 |\n<bbox><x_1><y_1><x_9>"
         "<y_9></bbox>boxes are kept in md\n"),
        ("md_prompt_with_ocr_text", "<md>", "<md><ocr>stays\n"),
    ]
    out = {"source": ["https://github.com/huggingface/transformers/blob/main/docs/source/en/model_doc/kosmos2_5.md",
                      "https://huggingface.co/microsoft/kosmos-2.5/blob/main/ocr.py"],
           "semantics": "see the comment above ocr_post_process in scripts/reference/kosmos2_5_reference.py",
           "raises": "never: every match has exactly four integers and lines/boxes always pair up; no input crashes it",
           "cases": []}
    sized = {name: (raw_w, raw_h, w, h) for name, _, _ in cases}
    bw, bh = processed_size(260, 190, MAX_PATCHES)   # big_rgb through the tiny processor
    cases.append(("tiny_processor_size", "<ocr>", "<ocr><bbox><x_0><y_0><x_143><y_95></bbox>whole image\n"
                  "<bbox><x_17><y_33><x_71><y_47></bbox>word\n"))
    sized["tiny_processor_size"] = (260, 190, bw, bh)
    if t:
        raw, proc, c = t
        cases.append(("float32_vs_float64_truncation", "<ocr>",
                      f"<ocr><bbox><x_0><y_0><x_{c}><y_{c}></bbox>scale {raw}/{proc}\n"))
        sized["float32_vs_float64_truncation"] = (raw, raw, proc, proc)
    for name, prompt, text in cases:
        rw, rh, pw, ph = sized[name]
        documented = ocr_post_process(text, prompt, documented_scale(rh, ph), documented_scale(rw, pw))
        f64 = ocr_post_process(text, prompt, rh / ph, rw / pw)
        out["cases"].append({"name": name, "prompt": prompt, "text": text, "raw_width": rw, "raw_height": rh,
                             "width": pw, "height": ph, "output": documented,
                             **({} if f64 == documented else {"output_float64": f64})})
    return out


# -------------------------------------------------------------------------------------------------------- main
def main():
    os.makedirs(OUT, exist_ok=True)
    for d in (TINY, UNTIED):
        shutil.rmtree(d, ignore_errors=True)
    torch.manual_seed(2509)

    tokenizer = build_tokenizer()
    vocab_size = len(tokenizer)
    processor = Kosmos2_5Processor(Kosmos2_5ImageProcessor(max_patches=MAX_PATCHES), tokenizer,
                                   num_image_tokens=NUM_IMAGE_TOKENS)
    model = Kosmos2_5ForConditionalGeneration(tiny_config(vocab_size, tied=True)).eval()
    randomize(model, seed=25)
    assert model.text_model.lm_head.weight is model.text_model.model.embed_tokens.weight
    model.save_pretrained(TINY)
    processor.save_pretrained(TINY)

    untied = Kosmos2_5ForConditionalGeneration(tiny_config(vocab_size, tied=False)).eval()
    missing = untied.load_state_dict(model.state_dict(), strict=False)
    assert missing.missing_keys == ["text_model.lm_head.weight"] or not missing.missing_keys, missing
    with torch.no_grad():
        g = torch.Generator().manual_seed(26)
        untied.text_model.lm_head.weight.copy_(torch.randn(untied.text_model.lm_head.weight.shape, generator=g) * 0.2)
    assert not torch.equal(untied.text_model.lm_head.weight, model.text_model.lm_head.weight)
    untied.save_pretrained(UNTIED)
    os.remove(os.path.join(UNTIED, "generation_config.json"))

    images = make_images()
    ptensors, pindex = {}, {"generator": GENERATOR, "transformers": transformers.__version__,
                            "max_patches": MAX_PATCHES}
    processor_fixture(images, ptensors, pindex)
    save_file(ptensors, os.path.join(OUT, "processor.safetensors"), metadata={"generator": GENERATOR})

    mtensors = {}
    base = len(FAIRSEQ_SPECIALS) + BPE_SIZE
    mindex = {"generator": GENERATOR, "transformers": transformers.__version__, "attn_implementation": "eager",
              "vocab_size": vocab_size,
              "token_layout": {"tiny": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "bpe": [4, base - 1],
                                        "<mask>": base, **{t: base + 1 + i for i, t in enumerate(KOSMOS_SYMBOLS)},
                                        "<x_i>": f"{base + 8} + 2i", "<y_i>": f"{base + 9} + 2i",
                                        "coordinates_per_axis": N_COORDS},
                               "real": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "bpe": "cl100k rank r -> r + 4",
                                        "<mask>": 100281, **{t: 100282 + i for i, t in enumerate(KOSMOS_SYMBOLS)},
                                        "<x_i>": "100289 + 2i", "<y_i>": "100290 + 2i",
                                        "coordinates_per_axis": 4096, "vocab_size": 108481},
                               "special_for_skip_special_tokens": sorted(SPECIAL_SYMBOLS | set(FAIRSEQ_SPECIALS))}}
    model_fixture(images, ptensors, mtensors, mindex, tokenizer)
    save_file(mtensors, os.path.join(OUT, "model.safetensors"), metadata={"generator": GENERATOR})

    with open(os.path.join(OUT, "processor.json"), "w", encoding="utf-8") as f:
        json.dump(pindex, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "model.json"), "w", encoding="utf-8") as f:
        json.dump(mindex, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "ocr_postprocess.json"), "w", encoding="utf-8") as f:
        json.dump(ocr_cases(), f, ensure_ascii=False, indent=1)

    total = 0
    for dirpath, _, files in sorted(os.walk(OUT)):
        for fn in sorted(files):
            p = os.path.join(dirpath, fn)
            total += os.path.getsize(p)
            print(f"{os.path.getsize(p):>9}  {os.path.relpath(p, OUT)}")
    print(f"{total:>9}  total")
    print("generated:", mtensors["generated"].tolist())


if __name__ == "__main__":
    main()
