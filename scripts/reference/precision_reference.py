"""bfloat16 judged fairly: PyTorch's own bfloat16 error on the tiny Kosmos-1 model, beside which our
bfloat16 logits are measured (Tests/KosmosModelsTests/PrecisionModelTests.swift).

Run from the repository root: venv/bin/python scripts/reference/precision_reference.py
Reads the weights and batch of Tests/Fixtures/kosmos_tiny.safetensors (scripts/reference/kosmos_reference.py)
and writes Tests/Fixtures/precision_reference.safetensors:
- `logits64`: the model in float64 (the float32 weights widened), the reference both are judged against;
- `logits_torch_bf16`: `model.to(torch.bfloat16)` with bfloat16 pixels, as people run PyTorch for inference;
- `torch_bf16_max_error`, `torch_bf16_rms_error`: that run's error against `logits64` over every position;
- `train.torch_bf16_grad_max_rel_error`, `train.torch_bf16_grad_rel_error`: the gradients of the
  fixture's loss under `torch.autocast("cpu", torch.bfloat16)` (mixed-precision training) against
  the float64 gradients `grad.*`: the worst parameter's ‖Δ‖/‖g‖ (over gradients that do not
  vanish in exact arithmetic, ‖g‖ > 1e-8) and all parameters' together;
- the same for the tiny Kosmos-2 (Tests/Fixtures/kosmos2_tiny through transformers'
  Kosmos2ForConditionalGeneration, the batch of kosmos2_expected.safetensors), prefixed `kosmos2.`,
  against float32 (`kosmos2.logits32`): transformers' Kosmos-2 does not run in float64 (its causal
  mask overflows), and float32's own error (~1e-6) is four orders below bfloat16's.
"""
import os
import warnings

warnings.filterwarnings("ignore")
import torch
from safetensors.torch import load_file, save_file

from transformers import Kosmos2ForConditionalGeneration

from kosmos_reference import ROOT, Kosmos, batch, loss_of

fixture = load_file(os.path.join(ROOT, "Tests", "Fixtures", "kosmos_tiny.safetensors"))
state = {k[len("model."):]: v for k, v in fixture.items() if k.startswith("model.")}
tokens, padding, slots, _ = batch()
assert torch.equal(tokens, fixture["tokens"]), "kosmos_tiny.safetensors was made from another batch"
pixels = fixture["pixels"]

def run(dtype):
    model = Kosmos()
    model.load_state_dict(state)
    model = model.to(dtype).eval()
    with torch.no_grad():
        return model(tokens, padding, slots, pixels.to(dtype)).double()

logits64 = run(torch.float64)
bf16 = run(torch.bfloat16)
error = (bf16 - logits64).abs()
out = {
    "logits64": logits64.float(),
    "logits_torch_bf16": bf16.float(),
    "torch_bf16_max_error": error.max().float().reshape(1),
    "torch_bf16_rms_error": error.pow(2).mean().sqrt().float().reshape(1),
}
print("Kosmos-1 PyTorch bf16 error: max %.4g, rms %.4g" % (error.max().item(), error.pow(2).mean().sqrt().item()))

# Mixed-precision training as PyTorch runs it: float32 weights under torch.autocast("cpu",
# bfloat16), the gradients of the fixture's loss against the float64 gradients (`grad.*` of
# kosmos_tiny.safetensors). Two figures: the largest per-parameter relative error ‖Δ‖/‖g‖ and the
# relative error of all gradients together.
model = Kosmos()
model.load_state_dict(state)
model.train()
with torch.autocast("cpu", dtype=torch.bfloat16):
    logits = model(tokens, padding, slots, pixels)
loss = loss_of(logits.float(), tokens, padding, slots)
loss.backward()
worst, delta2, norm2 = 0.0, 0.0, 0.0
for name, p in model.named_parameters():
    key = "grad." + name
    if key not in fixture:
        continue
    exact = fixture[key].double()
    diff = (p.grad.double() - exact).pow(2).sum().item()
    size = exact.pow(2).sum().item()
    if size ** 0.5 > 1e-8:
        # A gradient that vanishes in exact arithmetic (a key bias: softmax ignores it) has no
        # relative error to speak of; it still counts in the figure of all parameters together.
        worst = max(worst, (diff / size) ** 0.5)
    delta2 += diff
    norm2 += size
out["train.torch_bf16_grad_max_rel_error"] = torch.tensor([worst])
out["train.torch_bf16_grad_rel_error"] = torch.tensor([(delta2 / norm2) ** 0.5])
print("Kosmos-1 PyTorch autocast-bf16 gradients: worst parameter %.4g, all %.4g" % (worst, (delta2 / norm2) ** 0.5))

expected2 = load_file(os.path.join(ROOT, "Tests", "Fixtures", "kosmos2_expected.safetensors"))
mask = torch.zeros_like(expected2["input_ids"])
mask[0, expected2["image_positions"]] = 1

def run2(dtype):
    model = Kosmos2ForConditionalGeneration.from_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "kosmos2_tiny"),
                                                           attn_implementation="eager").to(dtype).eval()
    with torch.no_grad():
        return model(pixel_values=expected2["pixel_values"].to(dtype), input_ids=expected2["input_ids"],
                     image_embeds_position_mask=mask).logits.double()

logits2 = run2(torch.float32)
error2 = (run2(torch.bfloat16) - logits2).abs()
out.update({
    "kosmos2.logits32": logits2.float(),
    "kosmos2.torch_bf16_max_error": error2.max().float().reshape(1),
    "kosmos2.torch_bf16_rms_error": error2.pow(2).mean().sqrt().float().reshape(1),
})
print("Kosmos-2 PyTorch bf16 error: max %.4g, rms %.4g" % (error2.max().item(), error2.pow(2).mean().sqrt().item()))
path = os.path.join(ROOT, "Tests", "Fixtures", "precision_reference.safetensors")
save_file({k: v.contiguous() for k, v in out.items()}, path, metadata={"generator": "scripts/reference/precision_reference.py"})
print("wrote", path)
