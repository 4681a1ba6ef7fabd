"""Parity fixtures for CLIPVisionTransformer (transformers) and PerceiverResampler (flamingo-pytorch).

Run from the repository root: venv/bin/python scripts/reference/vision_reference.py
(venv: pip install torch safetensors transformers flamingo-pytorch). Writes
Tests/Fixtures/clip_<act>.safetensors and Tests/Fixtures/perceiver.safetensors with the module's
state_dict under `model.`, the input, the outputs, the random weights `w*` of the scalar
L = Σ out·w used for the backward pass, and `grad.<name>` for every parameter plus `grad.input`.
Forward and backward run in float64.
"""
import os
import warnings

warnings.filterwarnings("ignore")
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel
from flamingo_pytorch import PerceiverResampler

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def save(name, out):
    path = os.path.join(ROOT, "Tests", "Fixtures", name)
    save_file({k: v.detach().float().contiguous().clone() for k, v in out.items()}, path,
              metadata={"generator": "scripts/reference/vision_reference.py"})
    print("wrote", path)


def perturb_norms(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name or "layrnorm" in name:
                p.add_(torch.randn_like(p) * 0.1)


for act in ["quick_gelu", "gelu"]:
    torch.manual_seed(3)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=16, patch_size=4, hidden_act=act, attn_implementation="eager")
    # transformers 5: CLIPVisionModel is the tower itself (state-dict keys without "vision_model.").
    tower = CLIPVisionModel(config)
    perturb_norms(tower)
    out = {f"model.{k}": v.clone() for k, v in tower.state_dict().items()}
    tower = tower.double()
    pixels = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    result = tower(pixel_values=pixels)
    w1 = torch.randn_like(result.last_hidden_state)
    w2 = torch.randn_like(result.pooler_output)
    loss = (result.last_hidden_state * w1).sum() + (result.pooler_output * w2).sum()
    loss.backward()
    out.update(pixel_values=pixels, last_hidden_state=result.last_hidden_state, pooled=result.pooler_output,
               w1=w1, w2=w2)
    out["grad.input"] = pixels.grad
    for name, p in tower.named_parameters():
        out[f"grad.{name}"] = p.grad
    save(f"clip_{act}.safetensors", out)

torch.manual_seed(4)
resampler = PerceiverResampler(dim=32, depth=2, dim_head=8, heads=4, num_latents=6, num_media_embeds=3, ff_mult=2)
perturb_norms(resampler)
out = {f"model.{k}": v.clone() for k, v in resampler.state_dict().items()}
resampler = resampler.double()
media = torch.randn(2, 2, 5, 32, dtype=torch.float64, requires_grad=True)
result = resampler(media)
w = torch.randn_like(result)
(result * w).sum().backward()
out.update(media=media, output=result, w=w)
out["grad.input"] = media.grad
for name, p in resampler.named_parameters():
    out[f"grad.{name}"] = p.grad
single = torch.randn(2, 5, 32, dtype=torch.float64)
out["single_media"] = single
out["single_output"] = resampler(single)
save("perceiver.safetensors", out)

# Real transformers directories (save_pretrained) for the loading tests: a CLIPVisionModel
# (transformers 5 writes its tensors without "vision_model.") and a full CLIPModel (vision_model.*,
# text_model.*, projections). The expected last_hidden_state of one fixed input is stored beside.
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

torch.manual_seed(5)
vision_config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 image_size=16, patch_size=4, attn_implementation="eager")
single = CLIPVisionModel(vision_config).eval()
single.save_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "clip_vision_model"))
full = CLIPModel(CLIPConfig(text_config=CLIPTextConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, vocab_size=50, max_position_embeddings=8).to_dict(),
                            vision_config=vision_config.to_dict(), projection_dim=8)).eval()
full.save_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "clip_model"))
probe = torch.randn(1, 3, 16, 16)
with torch.no_grad():
    save("clip_directories_expected.safetensors", {
        "pixel_values": probe,
        "vision_model_last_hidden_state": single(pixel_values=probe).last_hidden_state,
        "clip_model_last_hidden_state": full.vision_model(pixel_values=probe).last_hidden_state,
    })

# End to end, as `kosmos encode-image` runs it: a real image file through CLIPImageProcessor (the
# PIL implementation, as transformers 5 names it) saved beside the CLIPVisionModel directory, then
# the tower.
from PIL import Image
from transformers import CLIPImageProcessorPil

processor = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
processor.save_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "clip_vision_model"))
image_path = os.path.join(ROOT, "Tests", "Fixtures", "images", "inputs", "rgb_640x480.jpg")
pixels = processor(images=Image.open(image_path).convert("RGB"), return_tensors="pt")["pixel_values"]
with torch.no_grad():
    save("clip_encode_image_expected.safetensors", {
        "pixel_values": pixels,
        "last_hidden_state": single(pixel_values=pixels).last_hidden_state,
    })
