"""Fixtures for Kosmos-2 with an untied LM head and a real tokenizer, and for its tokenizer routes.

Run from the repository root: /work/venv/bin/python scripts/reference/kosmos2_untied_reference.py
Writes
- Tests/Fixtures/kosmos2_untied/: a tiny Kosmos2ForConditionalGeneration saved by transformers with
  tie_word_embeddings=False (so `text_model.lm_head.weight` is its own tensor), whose vocabulary
  (1937) is that of the Kosmos-2 tokenizer fixtures in Tests/Fixtures/tokenizers
  (bpe_nmt_nfkc.model as sentencepiece.bpe.model: 900 pieces + fairseq offset + <mask> + 1035
  Kosmos2Processor tokens; hf_kosmos2_bpe.tokenizer.json is the same tokenizer as tokenizer.json).
  Tests copy the tokenizer files next to it, so the fixture holds no second copy of them.
- Tests/Fixtures/kosmos2_untied_expected.safetensors: `input_ids`, `image_positions`,
  `pixel_values`, `logits` (float32) and `greedy` (6 cached greedy tokens).
- Tests/Fixtures/kosmos2_prompts.json: for prompts with <grounding>, <phrase>, <object>,
  <patch_index_NNNN> tags, the ids Kosmos2Processor (num_image_tokens 4) gives with the
  tokenizer.json (fast) route and with the SentencePiece (slow-path: Trie split + sentencepiece +
  fairseq ids) route, which must agree, and the image-slot mask.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import sentencepiece as spm
import torch
from PIL import Image
from safetensors.torch import save_file, load_file
from tokenizers import Tokenizer
from transformers import (CLIPImageProcessor, Kosmos2Config, Kosmos2ForConditionalGeneration, Kosmos2Processor,
                          PreTrainedTokenizerFast)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tokenizers_reference import slow_tokenizer_ids  # noqa: E402  (the slow-tokenizer path, shared)

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIX = os.path.join(ROOT, "Tests", "Fixtures")
SP_FILE = os.path.join(FIX, "tokenizers", "bpe_nmt_nfkc.model")
JSON_FILE = os.path.join(FIX, "tokenizers", "hf_kosmos2_bpe.tokenizer.json")
LATENTS = 4

sp = spm.SentencePieceProcessor(model_file=SP_FILE)
n = sp.get_piece_size()
tags = ["</doc>", "<image>", "</image>", "</chunk>", "</line>", "<phrase>", "</phrase>", "<object>",
        "</object>", "</delimiter_of_multi_objects/>", "<grounding>"]
vocab = n + 2 + len(tags) + 1024

# --- the model -----------------------------------------------------------------------------------
torch.manual_seed(21)
config = Kosmos2Config(
    text_config=dict(vocab_size=vocab, embed_dim=16, layers=2, ffn_dim=32, attention_heads=4, max_position_embeddings=96,
                     dropout=0.0, attention_dropout=0.0, tie_word_embeddings=False),
    vision_config=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=16,
                       patch_size=8),
    latent_query_num=LATENTS, tie_word_embeddings=False)
config._attn_implementation = "eager"
model = Kosmos2ForConditionalGeneration(config).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" in name or "layrnorm" in name or "_ln" in name:
            p.add_(torch.randn_like(p) * 0.1)
    # Make the untied head clearly different from the embeddings (and large enough to matter).
    model.text_model.lm_head.weight.normal_(0, 0.5)
assert model.text_model.lm_head.weight.data_ptr() != model.text_model.model.embed_tokens.weight.data_ptr()
directory = os.path.join(FIX, "kosmos2_untied")
model.save_pretrained(directory)
saved = load_file(os.path.join(directory, "model.safetensors"))
assert "text_model.lm_head.weight" in saved, sorted(saved)[:5]
assert not torch.equal(saved["text_model.lm_head.weight"], saved["text_model.model.embed_tokens.weight"])

# --- the tokenizer routes ------------------------------------------------------------------------
fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(JSON_FILE), bos_token="<s>", eos_token="</s>",
                               unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
processor = Kosmos2Processor(image_processor=CLIPImageProcessor(size={"shortest_edge": 16},
                                                                crop_size={"height": 16, "width": 16}),
                             tokenizer=fast)
fairseq = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}


def xlmr_id(piece):
    if piece in fairseq:
        return fairseq[piece]
    i = sp.piece_to_id(piece)
    return i + 1 if i else 3


added = {t: (False, False, i) for t, i in fairseq.items()}
added["<mask>"] = (True, False, n + 1)
for k, t in enumerate(tags + [f"<patch_index_{x:04d}>" for x in range(1024)]):
    added[t] = (True, False, n + 2 + k)

image = Image.open(os.path.join(FIX, "images", "inputs", "rgb8_224x224.png")).convert("RGB")
prompts = ["<grounding> An image of",
           "<grounding><phrase> a snowman</phrase><object><patch_index_0012><patch_index_1023></object> is",
           "An image of <phrase>the fox</phrase><object><patch_index_0000><patch_index_0044></object>"
           "</delimiter_of_multi_objects/><patch_index_0012><patch_index_0513></object> jumps",
           "Question: what is <phrase>it</phrase>? Answer:",
           "café 東京 <grounding>  spaced   out  </image> <image> words"]
cases = []
for prompt in prompts:
    out = processor(text=prompt, images=image, num_image_tokens=LATENTS, return_tensors="pt")
    ids = out["input_ids"][0].tolist()
    mask = out["image_embeds_position_mask"][0].tolist()
    # The text the processor tokenized: <s> (added by the tokenizer) + its image block + the prompt.
    text = processor.preprocess_examples(prompt, image, num_image_tokens=LATENTS)
    slow = [0] + slow_tokenizer_ids(sp, text, added, xlmr_id)
    positions = [i for i, m in enumerate(mask) if m]
    # The slow route leaves the slot placeholders as <image> ids; the processor writes unk+1... there.
    for k, p in enumerate(positions):
        slow[p] = 4 + k
    assert slow == ids, (prompt, slow, ids)
    cases.append({"prompt": prompt, "ids": ids, "image_positions": positions})
with open(os.path.join(FIX, "kosmos2_prompts.json"), "w") as f:
    json.dump({"generator": "scripts/reference/kosmos2_untied_reference.py", "num_image_tokens": LATENTS,
               "cases": cases}, f, indent=1, ensure_ascii=False)

# --- logits and greedy tokens for the first prompt -----------------------------------------------
input_ids = torch.tensor([cases[0]["ids"]])
mask = torch.zeros_like(input_ids)
mask[0, cases[0]["image_positions"]] = 1
pixels = torch.randn(1, 3, 16, 16)
with torch.no_grad():
    out = model(pixel_values=pixels, input_ids=input_ids, image_embeds_position_mask=mask)
    greedy = model.generate(pixel_values=pixels, input_ids=input_ids, image_embeds_position_mask=mask,
                            attention_mask=torch.ones_like(input_ids), max_new_tokens=6, do_sample=False,
                            no_repeat_ngram_size=0, eos_token_id=None, use_cache=True)
save_file({"input_ids": input_ids, "image_positions": torch.tensor(cases[0]["image_positions"]), "pixel_values": pixels,
           "logits": out.logits.contiguous(), "greedy": greedy[:, input_ids.shape[1]:].contiguous()},
          os.path.join(FIX, "kosmos2_untied_expected.safetensors"),
          metadata={"generator": "scripts/reference/kosmos2_untied_reference.py"})
print("vocab", vocab, "prompt ids", len(cases[0]["ids"]), "greedy", greedy[0, input_ids.shape[1]:].tolist())
