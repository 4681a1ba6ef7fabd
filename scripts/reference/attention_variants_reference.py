"""Parity fixtures for the decoder's attention options beyond torchscale: multi-query and
grouped-query attention (`decoder_kv_attention_heads`) and QK-norm (`qk_norm`).

Run from the repository root: venv/bin/python scripts/reference/attention_variants_reference.py
(venv: scripts/reference/requirements.txt). `VariantAttention` extends torchscale 0.3's
MultiheadAttention as little as each option needs: k_proj/v_proj give kv_heads × head_dim features,
each key/value head serves heads / kv_heads query heads (query head h reads key/value head
h // group, repeat_interleave), and with QK-norm a LayerNorm over each head's query and key
(`q_norm`, `k_norm`, head_dim weights shared by the heads) comes after the projections and before
the scaling and xPos. Everything else is torchscale's forward. The decoder is decoder_reference.py's
"xpos_subln" (4 heads of 8) with every layer's self_attn replaced; the fixtures hold what
decoder_reference.py's do (logits and gradients in float64, ten AdamW steps in float32):
Tests/Fixtures/decoder_<variant>.safetensors.
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")
import torch
from torch import nn
import torch.nn.functional as F
from torchscale.component.multihead_attention import MultiheadAttention

sys.path.insert(0, os.path.dirname(__file__))
from decoder_reference import ROOT, build, write_fixture  # noqa: E402

VARIANTS = {"mqa": dict(kv_heads=1, qk_norm=False), "gqa": dict(kv_heads=2, qk_norm=False),
            "qknorm": dict(kv_heads=4, qk_norm=True), "gqa_qknorm": dict(kv_heads=2, qk_norm=True)}


class VariantAttention(MultiheadAttention):
    def __init__(self, args, embed_dim, num_heads, kv_heads, qk_norm):
        super().__init__(args, embed_dim, num_heads, dropout=0.0, self_attention=True, subln=args.subln)
        self.kv_heads = kv_heads
        self.k_proj = nn.Linear(embed_dim, kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(embed_dim, kv_heads * self.head_dim, bias=True)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=args.layernorm_eps) if qk_norm else None
        self.k_norm = nn.LayerNorm(self.head_dim, eps=args.layernorm_eps) if qk_norm else None
        if qk_norm:
            with torch.no_grad():
                for norm in (self.q_norm, self.k_norm):
                    norm.weight.add_(torch.randn_like(norm.weight) * 0.1)
                    norm.bias.add_(torch.randn_like(norm.bias) * 0.1)

    def forward(self, query, key, value, incremental_state=None, key_padding_mask=None, attn_mask=None,
                rel_pos=None, is_first_step=False):
        assert incremental_state is None and rel_pos is None
        bsz, tgt_len, embed_dim = query.size()
        src_len = key.size(1)
        q = self.q_proj(query).view(bsz, tgt_len, self.num_heads, self.head_dim)
        k = self.k_proj(key).view(bsz, src_len, self.kv_heads, self.head_dim)
        v = self.v_proj(value).view(bsz, src_len, self.kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q * self.scaling
        group = self.num_heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
        q = q.transpose(1, 2).reshape(bsz * self.num_heads, tgt_len, self.head_dim)
        k = k.transpose(1, 2).reshape(bsz * self.num_heads, src_len, self.head_dim)
        v = v.transpose(1, 2).reshape(bsz * self.num_heads, src_len, self.head_dim)
        if self.xpos is not None:
            k = self.xpos(k, offset=0, downscale=True)
            q = self.xpos(q, offset=0, downscale=False)
        # From here on torchscale's forward.
        attn_weights = torch.bmm(q, k.transpose(1, 2))
        if attn_mask is not None:
            attn_weights = torch.nan_to_num(attn_weights)
            attn_weights += attn_mask.unsqueeze(0)
        if key_padding_mask is not None:
            attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, src_len)
            attn_weights = attn_weights.masked_fill(key_padding_mask.unsqueeze(1).unsqueeze(2).to(torch.bool), float("-inf"))
            attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, src_len)
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).type_as(attn_weights)
        attn = torch.bmm(self.dropout_module(attn_weights), v)
        attn = attn.transpose(0, 1).reshape(tgt_len, bsz, embed_dim).transpose(0, 1)
        if self.inner_attn_ln is not None:
            attn = self.inner_attn_ln(attn)
        return self.out_proj(attn), attn_weights.view(bsz, self.num_heads, tgt_len, src_len).transpose(1, 0)


def build_variant(kv_heads, qk_norm, seed=17):
    decoder = build("xpos_subln", seed)
    torch.manual_seed(seed + 1)
    for layer in decoder.layers:
        attention = layer.self_attn
        layer.self_attn = VariantAttention(attention.args, attention.embed_dim, attention.num_heads, kv_heads, qk_norm)
    return decoder


for variant, options in VARIANTS.items():
    path = os.path.join(ROOT, "Tests", "Fixtures", f"decoder_{variant}.safetensors")
    write_fixture(lambda: build_variant(**options), path, "scripts/reference/attention_variants_reference.py")
