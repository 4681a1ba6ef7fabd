"""Parity fixture for the trainer: 20 AdamW steps of the tiny Kosmos of kosmos_reference.py with
gradient accumulation, a partially frozen vision tower, global-norm clipping and warmup + linear
decay — run in float64 so the Swift trainer can be compared step by step.

Run from the repository root: venv/bin/python scripts/reference/training_reference.py
Writes Tests/Fixtures/training_tiny.safetensors (< 1 MB):

  model.<name>        float32  initial state_dict (parameters and the xpos `scale` buffers), names as
                               kosmos_reference.py writes them under `model.`
  batch.<k>.tokens    int64    [2, L_k] micro-batch k = 0..3, padding id 0 on the right
  batch.<k>.lengths   int64    [2] unpadded length of each sequence
  batch.<k>.pixels    float32  [n_k, 3, 16, 16] the micro-batch's images, in the order their <image>
                               tokens appear (sequence 0's images first, then sequence 1's);
                               a micro-batch without images has no `pixels` entry
  losses              float64  [20] the loss of each optimizer step (before the update)
  grad_norms          float64  [20] global L2 norm of the accumulated gradient, before clipping
  lrs                 float64  [20] the learning rate used by each step
  final.<name>        float64  every parameter after the 20 steps (frozen ones too: unchanged)
  metadata (strings): the settings below, and `clipped_steps` (0-based steps where clipping acted)

The model is kosmos_reference.py's Kosmos class (copied here: importing that script would run it):
the same config, token layout (<image>=38, 4 slots of id 0, </image>=39, bos 1) and forward (a
micro-batch without images skips the vision/perceiver path). It is
built after torch.manual_seed(SEED) and, like kosmos_reference.py, every norm weight/bias gets
N(0, 0.1) noise so the norms are not identity; parameters are float32 (these are the saved initial
weights) and the run itself is model.double() with float64 pixels. Dropout is 0 everywhere.

Semantics, spelled out:
* Labels: for each position t < L-1 the target is token t+1, ignored when position t+1 is padding
  (t+1 >= length) or an image slot. A micro-batch's loss is the mean cross-entropy over its n_k
  labelled positions (kosmos_reference.py loss_of).
* Step s (0-based, 20 steps, accumulation 2) uses micro-batches (2s) % 4 and (2s+1) % 4. Each
  micro-batch's loss is multiplied by n_k / N (N = n over the step's two micro-batches) before
  backward, so the accumulated gradient is that of the mean over all N labelled positions; the
  logged step loss is sum_k loss_k * n_k / N.
* Freeze "all-but-last-layer": every `vision_model.*` parameter is frozen (requires_grad False, not
  in the optimizer) except `vision_model.encoder.layers.1.*` (the last of the 2 CLIP layers). The
  decoder, perceiver and image_proj are all trainable. Every trainable parameter gets a gradient.
* Clipping: torch.nn.utils.clip_grad_norm_(trainable, MAX_NORM): total = sqrt(sum of squares of all
  trainable gradients); coef = MAX_NORM / (total + 1e-6); when coef < 1 every gradient is
  multiplied by coef (otherwise untouched). `grad_norms` holds `total`. MAX_NORM = 2.5 clips steps
  0-10, 12, 14 and 16 but not 11, 13, 15, 17-19 (the closest calls: 2.525 at step 16, 2.481 at 18).
* LR for step s with T=20, W=5, peak 1e-3: s < W: peak*(s+1)/W, else peak*(T-s)/(T-W)
  (so 2e-4, 4e-4, ..., 1e-3 at s=4 and s=5, down to peak/15 at s=19). Set before each step.
* torch.optim.AdamW, betas (0.9, 0.98), eps 1e-6, two groups: weight_decay 0.1 for trainable
  parameters with ndim >= 2 (includes perceiver.latents [4,24] and perceiver.media_pos_emb
  [1,1,24]), 0.0 for ndim < 2. Update with t = s+1:
      p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
      p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
* Row 0 (padding id) of decoder.embed_tokens is zero at init (padding_idx) and stays zero: it gets no
  gradient (id 0 only occurs at padded positions, masked as keys and unlabelled, and at image slots,
  whose embeddings are replaced) and decay of zero is zero.
* Micro-batches 0 and 1 always meet in even steps, 2 and 3 in odd steps; each pair has images, so
  every trainable parameter has a gradient on every step.
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
SEED, STEPS, ACCUM, MICRO, WARMUP, PEAK = 33, 20, 2, 4, 5, 1e-3
MAX_NORM, BETAS, EPS, WEIGHT_DECAY = 2.5, (0.9, 0.98), 1e-6, 0.1
TRAINABLE_VISION = "vision_model.encoder.layers.1."


class Kosmos(torch.nn.Module):
    """Copied from kosmos_reference.py; only change: a micro-batch without images skips the image path."""

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
        embeddings = self.decoder.embed_tokens(tokens)
        if pixels is not None:
            features = self.vision_model(pixel_values=pixels).last_hidden_state
            images = self.image_proj(self.perceiver(features).squeeze(1))
            embeddings = embeddings.masked_scatter(slots.unsqueeze(-1), images.reshape(-1, DIM).to(embeddings.dtype))
        logits, _ = self.decoder(tokens, self_attn_padding_mask=padding, token_embeddings=embeddings)
        return logits


IMAGE = [IMG] + [PAD] * SLOTS + [IMG_END]


def micro_batches():
    """Four micro-batches of two sequences with different image layouts and lengths."""
    g = torch.Generator().manual_seed(SEED + 1)
    text = lambda n: torch.randint(1, 37, (n,), generator=g).tolist()
    layouts = [
        ([1] + text(2) + IMAGE + text(3) + IMAGE + text(2),  # two images interleaved
         [1] + text(6)),                                     # text only, shorter
        ([1] + text(9),                                      # text only, both
         [1] + text(4)),
        ([1] + IMAGE + text(5),                              # an image right after bos
         [1] + text(3) + IMAGE + text(1)),                   # one image near the end
        ([1] + text(3),                                      # short text only
         [1] + text(1) + IMAGE + IMAGE + text(4)),           # two adjacent images, longest
    ]
    out = []
    for rows in layouts:
        length = max(len(r) for r in rows)
        tokens = torch.full((2, length), PAD, dtype=torch.long)
        padding = torch.zeros(2, length, dtype=torch.bool)
        slots = torch.zeros(2, length, dtype=torch.bool)
        images = 0
        for i, r in enumerate(rows):
            tokens[i, :len(r)] = torch.tensor(r)
            padding[i, len(r):] = True
            for start in [j for j, t in enumerate(r) if t == IMG]:
                slots[i, start + 1:start + 1 + SLOTS] = True
                images += 1
        pixels = torch.randn(images, 3, 16, 16, generator=g) if images else None
        out.append(dict(tokens=tokens, padding=padding, slots=slots, pixels=pixels,
                        lengths=torch.tensor([len(r) for r in rows])))
    return out


def targets_of(tokens, padding, slots):
    targets = tokens[:, 1:].clone()
    targets[padding[:, 1:] | slots[:, 1:]] = -100
    return targets


def lr_at(s):
    return PEAK * (s + 1) / WARMUP if s < WARMUP else PEAK * (STEPS - s) / (STEPS - WARMUP)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    model = Kosmos()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "layrnorm" in name or "_ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model = model.float()
    out = {f"model.{k}": v.detach().clone().float() for k, v in model.state_dict().items()}
    batches = micro_batches()
    for k, b in enumerate(batches):
        out[f"batch.{k}.tokens"] = b["tokens"]
        out[f"batch.{k}.lengths"] = b["lengths"]
        if b["pixels"] is not None:
            out[f"batch.{k}.pixels"] = b["pixels"].float()

    model = model.double()
    model.eval()  # no dropout anywhere (all rates are 0); eval() only makes that explicit
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith("vision_model.") or name.startswith(TRAINABLE_VISION))
        if p.requires_grad:
            trainable.append((name, p))
    decayed = [p for _, p in trainable if p.ndim >= 2]
    plain = [p for _, p in trainable if p.ndim < 2]
    opt = torch.optim.AdamW([dict(params=decayed, weight_decay=WEIGHT_DECAY), dict(params=plain, weight_decay=0.0)],
                            lr=PEAK, betas=BETAS, eps=EPS)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}

    losses, norms, lrs, clipped = [], [], [], []
    for s in range(STEPS):
        opt.zero_grad(set_to_none=True)
        ks = [(ACCUM * s + a) % MICRO for a in range(ACCUM)]
        targets = {k: targets_of(batches[k]["tokens"], batches[k]["padding"], batches[k]["slots"]) for k in ks}
        counts = {k: int((targets[k] != -100).sum()) for k in ks}
        total = sum(counts.values())
        step_loss = 0.0
        for k in ks:
            b = batches[k]
            pixels = b["pixels"].double() if b["pixels"] is not None else None
            logits = model(b["tokens"], b["padding"], b["slots"], pixels)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets[k].reshape(-1), ignore_index=-100)
            (loss * counts[k] / total).backward()
            step_loss += loss.item() * counts[k] / total
        missing = [n for n, p in trainable if p.grad is None]
        assert not missing, f"trainable parameters without gradient: {missing}"
        norm = torch.nn.utils.clip_grad_norm_([p for _, p in trainable], max_norm=MAX_NORM).item()
        if MAX_NORM / (norm + 1e-6) < 1:
            clipped.append(s)
        lr = lr_at(s)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        losses.append(step_loss)
        norms.append(norm)
        lrs.append(lr)
        print(f"step {s:2d} batches {ks} n {[counts[k] for k in ks]} loss {step_loss:.6f} "
              f"grad_norm {norm:.6f} lr {lr:.2e}{'  clipped' if s in clipped else ''}")

    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p.detach(), frozen_before[n]), n
        out[f"final.{n}"] = p.detach().clone()
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    out["grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    out["lrs"] = torch.tensor(lrs, dtype=torch.float64)

    metadata = {
        "generator": "scripts/reference/training_reference.py",
        "seed": str(SEED),
        "dtype": "float64 run from float32 initial weights",
        "steps": str(STEPS),
        "grad_accumulation": str(ACCUM),
        "micro_batches": str(MICRO),
        "schedule": f"step s uses micro-batches (2s)%4, (2s+1)%4",
        "loss": "mean next-token CE over labelled positions; micro-batch loss scaled by n_k/N before backward",
        "freeze": "vision all-but-last-layer: trainable vision params are " + TRAINABLE_VISION + "*",
        "max_grad_norm": repr(MAX_NORM),
        "clip": "clip_grad_norm_: coef = max_norm/(total+1e-6), applied when < 1",
        "clipped_steps": ",".join(map(str, clipped)),
        "optimizer": f"AdamW betas={BETAS} eps={EPS}",
        "weight_decay": f"{WEIGHT_DECAY} for trainable ndim>=2, 0.0 for ndim<2",
        "lr_schedule": f"peak={PEAK} warmup={WARMUP} total={STEPS}: s<W: peak*(s+1)/W else peak*(T-s)/(T-W)",
    }
    path = os.path.join(ROOT, "Tests", "Fixtures", "training_tiny.safetensors")
    save_file({k: v.contiguous().clone() for k, v in out.items()}, path, metadata=metadata)
    print("wrote", path, os.path.getsize(path), "bytes;", len(trainable), "trainable parameters;",
          "clipped steps", clipped)


if __name__ == "__main__":
    main()
