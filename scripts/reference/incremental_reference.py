"""Incremental (KV-cached) decoding with torchscale 0.3, for the decoder cache's parity test.

Run from the repository root after decoder_reference.py: venv/bin/python scripts/reference/incremental_reference.py
Loads the weights of Tests/Fixtures/decoder_<variant>.safetensors into torchscale's Decoder (float64),
prefills 5 prompt tokens with incremental_state = {"is_first_step": True}, then feeds 4 more tokens one
at a time (is_first_step False), as torchscale's incremental decoding does (un-rotated keys cached,
xPos re-applied to all keys each step, query offset = keys − 1). Writes
Tests/Fixtures/incremental_<variant>.safetensors: `tokens` [1, 9] and `step_logits` [5, vocab]
(the prefill's last position, then each step), plus `full_logits` [1, 9, vocab] without a cache.
"""
import os
import warnings

warnings.filterwarnings("ignore")
import torch
from safetensors.torch import load_file, save_file
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder
from torchscale.component.embedding import PositionalEmbedding

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB, DIM, PAD = 50, 32, 1

for variant, positions in [("xpos_subln", None), ("xpos_learned", "learned"), ("subln", None)]:
    weights = load_file(os.path.join(ROOT, "Tests", "Fixtures", f"decoder_{variant}.safetensors"))
    state = {k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")}
    config = DecoderConfig(decoder_embed_dim=DIM, decoder_attention_heads=4, decoder_ffn_embed_dim=64, decoder_layers=2,
                           vocab_size=VOCAB, dropout=0.0, max_target_positions=16, xpos_rel_pos=variant.startswith("xpos"),
                           subln=True)
    decoder = Decoder(config, embed_tokens=torch.nn.Embedding(VOCAB, DIM, padding_idx=PAD),
                      embed_positions=PositionalEmbedding(18, DIM) if positions else None)
    decoder.load_state_dict(state)
    decoder = decoder.double().eval()
    tokens = torch.tensor([[3, 17, 9, 40, 22, 5, 31, 12, 8]])
    with torch.no_grad():
        full, _ = decoder(tokens)
        incremental = {"is_first_step": True}
        logits, _ = decoder(tokens[:, :5], incremental_state=incremental)
        steps = [logits[0, -1]]
        incremental["is_first_step"] = False
        for t in range(6, 10):
            logits, _ = decoder(tokens[:, :t], incremental_state=incremental)
            steps.append(logits[0, -1])
    out = {"tokens": tokens, "step_logits": torch.stack(steps).float(), "full_logits": full.float()}
    path = os.path.join(ROOT, "Tests", "Fixtures", f"incremental_{variant}.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata={"generator": "scripts/reference/incremental_reference.py"})
    gap = (torch.stack(steps) - full[0, 4:]).abs().max().item()
    print("wrote", path, "max |incremental - full| in float64:", gap)
