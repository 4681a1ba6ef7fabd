"""Reference values for KosmosTensor's ops, computed by PyTorch in float64 and stored as float32.

Run from the repository root with a venv that has torch and safetensors:
    python scripts/reference/ops_reference.py
Writes Tests/Fixtures/ops_reference.safetensors (a few tens of KB). For each case `NAME`, the
inputs are `NAME.x` (and others), the output `NAME.y`, the upstream gradient `NAME.gy` and the
gradients `NAME.gx` etc. Inputs are drawn in float32 and the reference is then evaluated in float64,
so the expected values carry no float32 rounding of their own.
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(1234)
out = {}


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def case(name, fn, inputs, extra=None):
    """Evaluate fn(**inputs) in float64; store inputs, output, a random upstream grad and input grads."""
    xs = {k: v.to(torch.float64).requires_grad_(True) for k, v in inputs.items()}
    y = fn(**xs)
    gy = torch.randn(y.shape, dtype=torch.float32).to(torch.float64)
    grads = torch.autograd.grad(y, list(xs.values()), gy)
    for k, v in inputs.items():
        out[f"{name}.{k}"] = f32(v)
    out[f"{name}.y"] = f32(y)
    out[f"{name}.gy"] = f32(gy)
    for k, g in zip(xs.keys(), grads):
        out[f"{name}.g{k}"] = f32(g)
    for k, v in (extra or {}).items():
        out[f"{name}.{k}"] = v


def randn(*shape, scale=1.0):
    # Draw in float32 so the fixture's inputs are exactly representable.
    return torch.randn(*shape, dtype=torch.float32) * scale


# Element-wise activations over a wide range.
x = torch.cat([randn(200, scale=3.0), torch.linspace(-8, 8, 57, dtype=torch.float32)])
case("gelu", lambda x: F.gelu(x), {"x": x})
case("quick_gelu", lambda x: x * torch.sigmoid(1.702 * x), {"x": x})
case("sigmoid", lambda x: torch.sigmoid(x), {"x": x})
case("tanh", lambda x: torch.tanh(x), {"x": x})
case("exp", lambda x: torch.exp(x), {"x": randn(100, scale=4.0)})
case("log", lambda x: torch.log(x), {"x": torch.rand(100) * 10 + 0.01})
case("sqrt", lambda x: torch.sqrt(x), {"x": torch.rand(100) * 10 + 0.01})
case("relu", lambda x: torch.relu(x), {"x": randn(100)})

# Row-wise ops (the last axis 37 is not a multiple of the SIMD width, to exercise the tails).
case("softmax", lambda x: torch.softmax(x, dim=-1), {"x": randn(3, 4, 37, scale=4.0)})
case("log_softmax", lambda x: torch.log_softmax(x, dim=-1), {"x": randn(3, 4, 37, scale=4.0)})
case("layer_norm", lambda x, w, b: F.layer_norm(x, (40,), w, b, eps=1e-5),
     {"x": randn(2, 5, 40, scale=2.0) + 3.0, "w": randn(40), "b": randn(40)})
case("layer_norm_plain", lambda x: F.layer_norm(x, (24,), eps=1e-5), {"x": randn(7, 24)})

# Cross-entropy with ignored targets (mean over the counted ones).
targets = torch.randint(0, 50, (12,))
targets[[2, 7, 8]] = -100
out["cross_entropy.targets"] = targets.to(torch.int64)
case("cross_entropy", lambda x: F.cross_entropy(x, targets, ignore_index=-100),
     {"x": randn(12, 50, scale=3.0)})
case("cross_entropy_sum", lambda x: F.cross_entropy(x, targets, ignore_index=-100, reduction="sum"),
     {"x": randn(12, 50, scale=3.0)})
out["cross_entropy_sum.targets"] = targets.to(torch.int64)

# Broadcasting arithmetic.
case("broadcast_add", lambda a, b: a + b, {"a": randn(2, 3, 5), "b": randn(3, 1)})
case("broadcast_mul", lambda a, b: a * b, {"a": randn(4, 1, 6), "b": randn(3, 6)})
case("broadcast_div", lambda a, b: a / b, {"a": randn(2, 3, 4), "b": torch.rand(1, 3, 1) + 0.5})
case("broadcast_sub", lambda a, b: a - b, {"a": randn(5), "b": randn(2, 3, 5)})

# Matrix products: batched with broadcasting, and the transposed forms.
case("matmul_batched", lambda a, b: a @ b, {"a": randn(2, 3, 4, 5), "b": randn(3, 5, 6)})
case("matmul_weight", lambda a, b: a @ b.transpose(-1, -2), {"a": randn(2, 7, 5), "b": randn(6, 5)})
case("matmul_ta", lambda a, b: a.transpose(-1, -2) @ b, {"a": randn(2, 5, 4), "b": randn(2, 5, 3)})
case("matmul_tatb", lambda a, b: a.transpose(-1, -2) @ b.transpose(-1, -2), {"a": randn(5, 4), "b": randn(3, 5)})

# Scaled dot-product attention with a causal mask and key padding; queries are the last 4 of 6
# key positions (the bottom-right causal alignment of a KV cache), plus the square case.
B, H, Lq, Lk, D = 2, 3, 4, 6, 8
pad = torch.zeros(B, Lk, dtype=torch.bool)
pad[1, 0] = True  # batch 1: first key is padding
pad[1, 1] = True
out["attention.key_padding"] = pad.to(torch.uint8)
i = torch.arange(Lq)[:, None]
j = torch.arange(Lk)[None, :]
allowed = (j <= i + (Lk - Lq))[None, None] & ~pad[:, None, None, :]


def attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


case("attention", attention, {"q": randn(B, H, Lq, D), "k": randn(B, H, Lk, D), "v": randn(B, H, Lk, D)})
case("attention_causal_square",
     lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
     {"q": randn(1, 2, 5, 16), "k": randn(1, 2, 5, 16), "v": randn(1, 2, 5, 16)})

# Reductions and shape ops.
case("sum_axes", lambda x: x.sum(dim=(0, 2), keepdim=True), {"x": randn(3, 4, 5)})
case("mean_axis", lambda x: x.mean(dim=1), {"x": randn(3, 4, 5)})
case("permute", lambda x: x.permute(2, 0, 3, 1), {"x": randn(2, 3, 4, 5)})
case("concat_narrow", lambda a, b: torch.cat([a, b], dim=1)[:, 1:5], {"a": randn(2, 3, 4), "b": randn(2, 4, 4)})

# AdamW, three steps with given gradients, PyTorch's float32 CPU arithmetic.
p0 = randn(33)
grads = [randn(33) for _ in range(3)]
param = torch.nn.Parameter(p0.clone())
opt = torch.optim.AdamW([param], lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
out["adamw.p0"] = p0.clone()
for step, g in enumerate(grads, start=1):
    param.grad = g.clone()
    opt.step()
    out[f"adamw.g{step}"] = g.clone()
    out[f"adamw.p{step}"] = param.detach().clone()

path = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "ops_reference.safetensors")
save_file({k: v.clone().contiguous() for k, v in sorted(out.items())}, os.path.normpath(path),
          metadata={"generator": "scripts/reference/ops_reference.py", "torch": torch.__version__})
print("wrote", os.path.normpath(path), len(out), "tensors")
