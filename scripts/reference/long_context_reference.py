"""Parity fixture for xPos at long lengths: torchscale 0.3's Decoder over a 12,000-token input.

Run from the repository root: venv/bin/python scripts/reference/long_context_reference.py
(venv: scripts/reference/requirements.txt). A tiny xPos sub-LN decoder (vocab 64, dim 32, 2 heads of
16, 2 layers, max_target_positions 12,288) runs in float64 over 12,000 token ids given by a formula
(`token(i)` below, repeated in the test); Tests/Fixtures/long_context_xpos.safetensors holds its
float32 state_dict (prefix `model.`), `positions` (int64) and `logits` [positions, vocab] at those
positions (float64 values rounded to float32). The decoder sees the whole input in one pass, with
torchscale's xPos centred on half the length.
"""
import os
import warnings

warnings.filterwarnings("ignore")
import torch
from safetensors.torch import save_file
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB, DIM, HEADS, FFN, LAYERS, PAD, LENGTH, MAX = 64, 32, 2, 64, 2, 1, 12_000, 12_288
POSITIONS = [0, 1, 2, 3, 100, 511, 512, 513, 1023, 2047, 2048, 4095, 4096, 6000, 8191, 8192, 10000, 11000, 11998, 11999]


def token(i):
    return 2 + (i * 7 + (i * i) % 13) % (VOCAB - 2)


torch.manual_seed(23)
config = DecoderConfig(decoder_embed_dim=DIM, decoder_attention_heads=HEADS, decoder_ffn_embed_dim=FFN,
                       decoder_layers=LAYERS, vocab_size=VOCAB, dropout=0.0, max_target_positions=MAX,
                       xpos_rel_pos=True, xpos_scale_base=512, subln=True)
decoder = Decoder(config, embed_tokens=torch.nn.Embedding(VOCAB, DIM, padding_idx=PAD))
with torch.no_grad():
    for name, p in decoder.named_parameters():
        if "layer_norm" in name or "ln" in name or "layernorm" in name:
            p.add_(torch.randn_like(p) * 0.1)
decoder.eval()
out = {f"model.{k}": v.detach().clone().float() for k, v in decoder.state_dict().items()}
tokens = torch.tensor([[token(i) for i in range(LENGTH)]])
with torch.no_grad():
    logits, _ = decoder.double()(tokens)
out["positions"] = torch.tensor(POSITIONS, dtype=torch.int64)
out["logits"] = logits[0, POSITIONS].float()
path = os.path.join(ROOT, "Tests", "Fixtures", "long_context_xpos.safetensors")
save_file({k: v.contiguous().clone() for k, v in out.items()}, path,
          metadata={"generator": "scripts/reference/long_context_reference.py"})
print("wrote", path, "logits at", len(POSITIONS), "positions; last row", logits[0, -1, :4].tolist())
