"""Parity fixture for Kosmos-2: a tiny, randomly initialised transformers Kosmos2ForConditionalGeneration.

Run from the repository root: venv/bin/python scripts/reference/kosmos2_reference.py
Writes Tests/Fixtures/kosmos2_tiny/ (config.json + model.safetensors via save_pretrained) and
Tests/Fixtures/kosmos2_expected.safetensors: `input_ids` [1, L], `image_positions`, `pixel_values`
[1, 3, 16, 16], `image_embeds` [1, 4, 32], `logits` [1, L, vocab] (float32 model), and
`greedy` — 6 tokens from model.generate(do_sample=False, no_repeat_ngram_size=0) with the KV cache,
and beam-search outputs (`beam3`, `beam2_ngram3`, `beam4_lp`; up to 8 new tokens, EOS 2, early_stopping False).
"""
import os
import warnings

warnings.filterwarnings("ignore")
import torch
from safetensors.torch import save_file
from transformers import Kosmos2Config, Kosmos2ForConditionalGeneration

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
torch.manual_seed(8)
config = Kosmos2Config(
    text_config=dict(vocab_size=120, embed_dim=32, layers=2, ffn_dim=64, attention_heads=4, max_position_embeddings=64,
                     dropout=0.0, attention_dropout=0.0),
    vision_config=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=16,
                       patch_size=8),
    latent_query_num=4)
config._attn_implementation = "eager"
model = Kosmos2ForConditionalGeneration(config).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" in name or "layrnorm" in name or "_ln" in name:
            p.add_(torch.randn_like(p) * 0.1)
directory = os.path.join(ROOT, "Tests", "Fixtures", "kosmos2_tiny")
model.save_pretrained(directory)

boi, eoi = 100, 101
positions = list(range(2, 6))
input_ids = torch.tensor([[0, boi, 4, 5, 6, 7, eoi, 20, 33, 47]])
mask = torch.zeros_like(input_ids)
mask[0, positions] = 1
pixels = torch.randn(1, 3, 16, 16)
with torch.no_grad():
    out = model(pixel_values=pixels, input_ids=input_ids, image_embeds_position_mask=mask)
    greedy = model.generate(pixel_values=pixels, input_ids=input_ids, image_embeds_position_mask=mask,
                            attention_mask=torch.ones_like(input_ids), max_new_tokens=6, do_sample=False,
                            no_repeat_ngram_size=0, eos_token_id=None, use_cache=True)
    beams = {}
    for name, kwargs in {"beam3": dict(num_beams=3), "beam2_ngram3": dict(num_beams=2, no_repeat_ngram_size=3),
                         "beam4_lp": dict(num_beams=4, length_penalty=0.6)}.items():
        settings = {"no_repeat_ngram_size": 0, **kwargs}
        out_beam = model.generate(pixel_values=pixels, input_ids=input_ids, image_embeds_position_mask=mask,
                                  attention_mask=torch.ones_like(input_ids), max_new_tokens=8, do_sample=False,
                                  early_stopping=False, use_cache=True, **settings)
        beams[name] = out_beam[:, input_ids.shape[1]:].contiguous()
        print(name, beams[name].tolist())
save_file({**beams, "input_ids": input_ids, "image_positions": torch.tensor(positions), "pixel_values": pixels,
           "image_embeds": out.image_embeds.contiguous(), "logits": out.logits.contiguous(),
           "greedy": greedy[:, input_ids.shape[1]:].contiguous()},
          os.path.join(ROOT, "Tests", "Fixtures", "kosmos2_expected.safetensors"),
          metadata={"generator": "scripts/reference/kosmos2_reference.py"})
print("greedy", greedy.tolist())
