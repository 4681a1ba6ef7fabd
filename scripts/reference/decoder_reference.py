"""Parity fixtures for MagnetoDecoder: torchscale 0.3's Decoder on tiny configurations.

Run from the repository root: venv/bin/python scripts/reference/decoder_reference.py
(venv: pip install torch safetensors torchscale fairscale==0.4.0 timm). Writes
Tests/Fixtures/decoder_<variant>.safetensors holding, with the prefix `model.`, the decoder's full
state_dict (torchscale names), and `tokens` [2, 7] (int64; row 1 right-padded with 2 pads),
`key_padding` [2, 7] (uint8), `logits`, `loss` (mean next-token cross-entropy over non-pad targets),
`grad.<name>` for every parameter, and `adamw_losses` (10 AdamW steps, lr 1e-3, betas (0.9, 0.98),
eps 1e-6, weight decay 0.01). Float64 is used for the forward/backward so expected values carry
no float32 rounding; the AdamW trajectory runs in float32 like our optimizer.
"""
import math
import os
import warnings

warnings.filterwarnings("ignore")
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder
from torchscale.component.embedding import PositionalEmbedding

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB, DIM, HEADS, FFN, LAYERS, PAD = 50, 32, 4, 64, 2, 1

VARIANTS = {
    "xpos_subln": dict(xpos_rel_pos=True, subln=True, positions=None),
    "subln": dict(xpos_rel_pos=False, subln=True, positions=None),
    "xpos_learned": dict(xpos_rel_pos=True, subln=True, positions="learned"),
    "preln_learned": dict(xpos_rel_pos=False, subln=False, positions="learned", layernorm_embedding=True,
                          no_scale_embedding=False),
    "xpos_tied": dict(xpos_rel_pos=True, subln=True, positions=None, share_decoder_input_output_embed=True),
}


def build(variant, seed):
    torch.manual_seed(seed)
    options = dict(VARIANTS[variant])
    positions = options.pop("positions")
    config = DecoderConfig(decoder_embed_dim=DIM, decoder_attention_heads=HEADS, decoder_ffn_embed_dim=FFN,
                           decoder_layers=LAYERS, vocab_size=VOCAB, dropout=0.0, max_target_positions=16,
                           xpos_scale_base=512, **options)
    embed_tokens = torch.nn.Embedding(VOCAB, DIM, padding_idx=PAD)
    embed_positions = PositionalEmbedding(16 + 2, DIM) if positions == "learned" else None
    decoder = Decoder(config, embed_tokens=embed_tokens, embed_positions=embed_positions)
    # Perturb the layer norms away from 1/0 so their gradients are exercised non-trivially.
    with torch.no_grad():
        for name, p in decoder.named_parameters():
            if "layer_norm" in name or "ln" in name or "layernorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return decoder


def batch():
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(2, VOCAB, (2, 7), generator=g)
    tokens[1, 5:] = PAD
    padding = tokens.eq(PAD)
    return tokens, padding


def loss_of(logits, tokens):
    targets = tokens[:, 1:].clone()
    targets[targets == PAD] = -100
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)


def write_fixture(make, path, generator):
    """Writes one decoder's fixture: `make()` builds the decoder (the same weights every call)."""
    decoder = make()
    tokens, padding = batch()
    out = {f"model.{k}": v.detach().clone().float() for k, v in decoder.state_dict().items()}
    model64 = make().double()
    logits, _ = model64(tokens, self_attn_padding_mask=padding)
    loss = loss_of(logits, tokens)
    loss.backward()
    out["tokens"] = tokens
    out["key_padding"] = padding.to(torch.uint8)
    out["logits"] = logits.detach().float()
    out["loss"] = loss.detach().float().reshape(1)
    for name, p in model64.named_parameters():
        if p.grad is not None:
            out[f"grad.{name}"] = p.grad.detach().float()
    # Ten AdamW steps in float32.
    opt = torch.optim.AdamW(decoder.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        logits, _ = decoder(tokens, self_attn_padding_mask=padding)
        step_loss = loss_of(logits, tokens)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
    out["adamw_losses"] = torch.tensor(losses, dtype=torch.float32)
    save_file({k: v.contiguous().clone() for k, v in out.items()}, path, metadata={"generator": generator})
    print("wrote", path, f"loss {loss.item():.6f}")


def main():
    for variant in VARIANTS:
        path = os.path.join(ROOT, "Tests", "Fixtures", f"decoder_{variant}.safetensors")
        write_fixture(lambda: build(variant, seed=17), path, "scripts/reference/decoder_reference.py")

    # fairseq's sinusoidal position table as transformers' Kosmos-2 implements it (the decoder's
    # `absolute_positions: "sinusoidal"`): rows for positions padding_idx+1 .. padding_idx+12, dim 32.
    from transformers.models.kosmos2.modeling_kosmos2 import Kosmos2TextSinusoidalPositionalEmbedding

    table = Kosmos2TextSinusoidalPositionalEmbedding.get_embedding(PAD + 1 + 12, DIM, PAD)
    path = os.path.join(ROOT, "Tests", "Fixtures", "sinusoidal_positions.safetensors")
    save_file({"positions": table[PAD + 1:].contiguous().clone()}, path, metadata={"generator": "scripts/reference/decoder_reference.py"})
    print("wrote", path)


if __name__ == "__main__":
    main()
