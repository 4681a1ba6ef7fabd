"""Parity fixture for the whole Kosmos-1 model: torchscale Decoder + transformers CLIPVisionModel +
flamingo-pytorch PerceiverResampler + image_proj, assembled as the Kosmos-X design describes.

Run from the repository root: venv/bin/python scripts/reference/kosmos_reference.py
Writes Tests/Fixtures/kosmos_tiny.safetensors: the state_dict under `model.` with our directory
layout (decoder.*, vision_model.*, perceiver.*, image_proj.weight), the batch (`tokens` [2, L]
int64, `lengths`, `pixels` [2, 3, 16, 16] — both images belong to sequence 0), `logits`, `loss`,
`grad.<name>` for every parameter (float64 run) and `adamw_losses` for 10 AdamW steps (float32 run).

The reference semantics spelled out: each image → vision last_hidden_state (all tokens, before
post_layernorm) → resampler → image_proj; the 4 slot embeddings after each <image> id replace the
token embeddings there; the decoder runs on those embeddings with key padding; the loss is the mean
next-token cross-entropy where the target is neither padding nor an image slot.
"""
import os
import warnings

warnings.filterwarnings("ignore")
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder
from transformers import CLIPVisionConfig, CLIPVisionModel
from flamingo_pytorch import PerceiverResampler

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB, DIM, PAD, IMG, IMG_END, SLOTS = 40, 32, 0, 38, 39, 4


class Kosmos(torch.nn.Module):
    def __init__(self):
        super().__init__()
        config = DecoderConfig(decoder_embed_dim=DIM, decoder_attention_heads=4, decoder_ffn_embed_dim=64,
                               decoder_layers=2, vocab_size=VOCAB, xpos_rel_pos=True, subln=True)
        self.decoder = Decoder(config, embed_tokens=torch.nn.Embedding(VOCAB, DIM, padding_idx=PAD))
        self.vision_model = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=16,
            patch_size=8, attn_implementation="eager"))
        self.perceiver = PerceiverResampler(dim=24, depth=1, dim_head=6, heads=4, num_latents=SLOTS, num_media_embeds=1,
                                            ff_mult=2)
        self.image_proj = torch.nn.Linear(24, DIM, bias=False)

    def forward(self, tokens, padding, slots, pixels):
        features = self.vision_model(pixel_values=pixels).last_hidden_state
        images = self.image_proj(self.perceiver(features).squeeze(1))
        embeddings = self.decoder.embed_tokens(tokens)
        embeddings = embeddings.masked_scatter(slots.unsqueeze(-1), images.reshape(-1, DIM).to(embeddings.dtype))
        logits, _ = self.decoder(tokens, self_attn_padding_mask=padding, token_embeddings=embeddings)
        return logits


def batch():
    g = torch.Generator().manual_seed(9)
    text = lambda n: torch.randint(1, 37, (n,), generator=g).tolist()
    image = [IMG] + [PAD] * SLOTS + [IMG_END]
    first = [1] + text(2) + image + text(3) + image + text(2)   # two images interleaved
    second = [1] + text(6)                                        # text only, shorter
    length = len(first)
    tokens = torch.full((2, length), PAD, dtype=torch.long)
    tokens[0, :len(first)] = torch.tensor(first)
    tokens[1, :len(second)] = torch.tensor(second)
    padding = torch.zeros(2, length, dtype=torch.bool)
    padding[1, len(second):] = True
    slots = torch.zeros(2, length, dtype=torch.bool)
    for start in [i for i, t in enumerate(first) if t == IMG]:
        slots[0, start + 1:start + 1 + SLOTS] = True
    return tokens, padding, slots, torch.tensor([len(first), len(second)])


def loss_of(logits, tokens, padding, slots):
    targets = tokens[:, 1:].clone()
    targets[padding[:, 1:] | slots[:, 1:]] = -100
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)


def main():
    torch.manual_seed(21)
    model = Kosmos()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "layrnorm" in name or "_ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    tokens, padding, slots, lengths = batch()
    pixels = torch.randn(2, 3, 16, 16)
    out = {f"model.{k}": v.detach().clone().float() for k, v in model.state_dict().items()}
    out.update(tokens=tokens, lengths=lengths, pixels=pixels.clone())

    model64 = Kosmos()
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    logits = model64(tokens, padding, slots, pixels.double())
    loss = loss_of(logits, tokens, padding, slots)
    loss.backward()
    out["logits"] = logits.detach().float()
    out["loss"] = loss.detach().float().reshape(1)
    for name, p in model64.named_parameters():
        if p.grad is not None:
            out[f"grad.{name}"] = p.grad.detach().float()

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        step_loss = loss_of(model(tokens, padding, slots, pixels), tokens, padding, slots)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
    out["adamw_losses"] = torch.tensor(losses)
    path = os.path.join(ROOT, "Tests", "Fixtures", "kosmos_tiny.safetensors")
    save_file({k: v.contiguous().clone() for k, v in out.items()}, path, metadata={"generator": "scripts/reference/kosmos_reference.py"})
    print("wrote", path, "loss", loss.item(), "params with grad", sum(1 for k in out if k.startswith("grad.")))


if __name__ == "__main__":
    main()
