"""Parity fixture for the Kosmos-1 assembly with video: text + image + video in one sequence.

Run from the repository root: venv/bin/python scripts/reference/kosmos_video_reference.py
Writes Tests/Fixtures/kosmos_video_tiny.safetensors and Tests/Fixtures/kosmos_video_tiny_config.json.

The model is kosmos_reference.py's Kosmos (torchscale Decoder + transformers CLIPVisionModel + flamingo-pytorch
PerceiverResampler + image_proj) with vocabulary 42 and the resampler built with num_media_embeds=3. Video semantics:
  - a video is T frames [T, 3, 16, 16]; every frame goes through the same `vision_model` as images
    (last_hidden_state, all tokens, before post_layernorm) -> features [T, tokens, 24];
  - they are stacked as [1, T, tokens, 24] and go through the same `perceiver`; with T > 1 its forward adds
    media_pos_emb[t] (a [1, 24] row, broadcast over tokens) to frame t's features, then every frame is resampled
    independently (attention is per (batch, time)) -> [1, T, num_latents, 24];
  - that is flattened in frame order to [T * num_latents, 24] (frame 0's latents first) and through `image_proj`;
  - those embeddings fill the T * num_latents slots between <video> (40) and </video> (41).
Images stay as in kosmos_reference.py: [N, tokens, 24] -> the perceiver sees T = 1 (media_pos_emb row 0).
The loss is the mean next-token cross-entropy where the target is neither padding nor an image/video slot
(<image>, </image>, <video>, </video> are targets).

Stored: `model.<name>` (state_dict), `tokens` [2, L] int64, `lengths`, `pixels` [1, 3, 16, 16] (the image of
sequence 0), `video0` [3, 3, 16, 16] (sequence 0's video), `video1` [2, 3, 16, 16] (sequence 1's video), `logits`,
`loss`, `grad.<name>` (float64 run), `adamw_losses` (10 AdamW steps, float32 run), and `video0_embeds`
= image_proj(perceiver(features of video0)) [12, 32] from the float64 run.
"""
import json
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
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
VOCAB, DIM, PAD, IMG, IMG_END, VID, VID_END, SLOTS, MAX_FRAMES = 42, 32, 0, 38, 39, 40, 41, 4, 3


class KosmosVideo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        config = DecoderConfig(decoder_embed_dim=DIM, decoder_attention_heads=4, decoder_ffn_embed_dim=64,
                               decoder_layers=2, vocab_size=VOCAB, xpos_rel_pos=True, subln=True)
        self.decoder = Decoder(config, embed_tokens=torch.nn.Embedding(VOCAB, DIM, padding_idx=PAD))
        self.vision_model = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=16,
            patch_size=8, attn_implementation="eager"))
        self.perceiver = PerceiverResampler(dim=24, depth=1, dim_head=6, heads=4, num_latents=SLOTS,
                                            num_media_embeds=MAX_FRAMES, ff_mult=2)
        self.image_proj = torch.nn.Linear(24, DIM, bias=False)

    def embed_images(self, pixels):
        """[N, 3, H, W] -> [N, SLOTS, DIM]: each image is its own media (T = 1)."""
        features = self.vision_model(pixel_values=pixels).last_hidden_state       # [N, tokens, 24]
        return self.image_proj(self.perceiver(features).squeeze(1))                # perceiver: [N, 1, SLOTS, 24]

    def embed_video(self, frames):
        """[T, 3, H, W] -> [T * SLOTS, DIM]: one media of T frames (time embeddings media_pos_emb[0..<T])."""
        features = self.vision_model(pixel_values=frames).last_hidden_state        # [T, tokens, 24]
        latents = self.perceiver(features.unsqueeze(0))                            # [1, T, SLOTS, 24]
        return self.image_proj(latents.reshape(-1, latents.shape[-1]))             # frame-major [T * SLOTS, DIM]

    def forward(self, tokens, padding, image_slots, video_slots, pixels, videos):
        images = self.embed_images(pixels).reshape(-1, DIM)
        video = torch.cat([self.embed_video(v) for v in videos], dim=0)            # row-major slot order
        embeddings = self.decoder.embed_tokens(tokens)
        embeddings = embeddings.masked_scatter(image_slots.unsqueeze(-1), images.to(embeddings.dtype))
        embeddings = embeddings.masked_scatter(video_slots.unsqueeze(-1), video.to(embeddings.dtype))
        logits, _ = self.decoder(tokens, self_attn_padding_mask=padding, token_embeddings=embeddings)
        return logits


def batch():
    g = torch.Generator().manual_seed(9)
    text = lambda n: torch.randint(1, 37, (n,), generator=g).tolist()   # ids in 1..36 (kosmos_reference's draw)
    image = [IMG] + [PAD] * SLOTS + [IMG_END]
    video = lambda frames: [VID] + [PAD] * (frames * SLOTS) + [VID_END]
    first = [1] + text(2) + image + text(2) + video(3) + text(3)
    second = [1] + text(2) + video(2) + text(3)
    length = len(first)
    tokens = torch.full((2, length), PAD, dtype=torch.long)
    tokens[0, :len(first)] = torch.tensor(first)
    tokens[1, :len(second)] = torch.tensor(second)
    padding = torch.zeros(2, length, dtype=torch.bool)
    padding[1, len(second):] = True
    image_slots = torch.zeros(2, length, dtype=torch.bool)
    video_slots = torch.zeros(2, length, dtype=torch.bool)
    for row, seq in enumerate([first, second]):
        for i, t in enumerate(seq):
            if t == IMG:
                image_slots[row, i + 1:i + 1 + SLOTS] = True
            if t == VID:
                end = seq.index(VID_END, i)
                video_slots[row, i + 1:end] = True
    assert not (image_slots & video_slots).any()
    assert image_slots.sum() == SLOTS and video_slots.sum() == (3 + 2) * SLOTS
    return tokens, padding, image_slots, video_slots, torch.tensor([len(first), len(second)])


def loss_of(logits, tokens, padding, image_slots, video_slots):
    targets = tokens[:, 1:].clone()
    targets[padding[:, 1:] | image_slots[:, 1:] | video_slots[:, 1:]] = -100
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)


def main():
    torch.manual_seed(21)
    model = KosmosVideo()
    perturbed = []
    with torch.no_grad():
        for mname, module in model.named_modules():
            # every LayerNorm (torch's or torchscale's, which is torch.nn.LayerNorm without apex)
            if isinstance(module, torch.nn.LayerNorm):
                for pname, p in module.named_parameters(recurse=False):
                    p.add_(torch.randn_like(p) * 0.1)
                    perturbed.append(f"{mname}.{pname}")
    print("perturbed LayerNorm params:", len(perturbed))
    tokens, padding, image_slots, video_slots, lengths = batch()
    g = torch.Generator().manual_seed(13)
    pixels = torch.randn(1, 3, 16, 16, generator=g)
    video0 = torch.randn(3, 3, 16, 16, generator=g)
    video1 = torch.randn(2, 3, 16, 16, generator=g)
    out = {f"model.{k}": v.detach().clone().float() for k, v in model.state_dict().items()}
    out.update(tokens=tokens, lengths=lengths, pixels=pixels.clone(), video0=video0.clone(), video1=video1.clone())

    model64 = KosmosVideo()
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    logits = model64(tokens, padding, image_slots, video_slots, pixels.double(), [video0.double(), video1.double()])
    loss = loss_of(logits, tokens, padding, image_slots, video_slots)
    loss.backward()
    assert torch.isfinite(loss), loss
    out["logits"] = logits.detach().float()
    out["loss"] = loss.detach().float().reshape(1)
    no_grad, zero_grad = [], []
    for name, p in model64.named_parameters():
        if p.grad is None:
            no_grad.append(name)
            continue
        out[f"grad.{name}"] = p.grad.detach().float()
        if p.grad.abs().sum() == 0:
            zero_grad.append(name)
    print("params without grad:", no_grad)
    print("params with all-zero grad:", zero_grad)
    assert not zero_grad, zero_grad
    mpe = model64.perceiver.media_pos_emb.grad.reshape(MAX_FRAMES, -1)
    print("media_pos_emb grad row norms:", mpe.norm(dim=-1).tolist())
    assert (mpe.abs().sum(dim=-1) > 0).all()

    with torch.no_grad():
        video0_embeds = model64.embed_video(video0.double())
        # the time embeddings matter: without them (all rows zero) frame t>0's latents would differ
        check = model64.image_proj(model64.perceiver(
            model64.vision_model(pixel_values=video0.double()).last_hidden_state.unsqueeze(0)).reshape(-1, 24))
        assert torch.equal(check, video0_embeds)
        # frame 0 of a video equals that frame resampled as an image (row 0 added in both)
        as_image = model64.embed_images(video0[:1].double()).reshape(-1, DIM)
        print("video0 frame 0 vs the same frame as an image, max diff:",
              (as_image - video0_embeds[:SLOTS]).abs().max().item())
    out["video0_embeds"] = video0_embeds.float()

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        step_loss = loss_of(model(tokens, padding, image_slots, video_slots, pixels, [video0, video1]),
                            tokens, padding, image_slots, video_slots)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    out["adamw_losses"] = torch.tensor(losses)

    path = os.path.join(FIXTURES, "kosmos_video_tiny.safetensors")
    save_file({k: v.contiguous().clone() for k, v in out.items()}, path,
              metadata={"generator": "scripts/reference/kosmos_video_reference.py"})
    print("tokens", tokens.tolist(), "lengths", lengths.tolist())
    print("wrote", path, os.path.getsize(path), "bytes; loss", loss.item(), "float32 first step", losses[0],
          "params with grad", sum(1 for k in out if k.startswith("grad.")))
    print("adamw_losses", losses)

    with open(os.path.join(FIXTURES, "kosmos_tiny_config.json")) as f:
        config = json.load(f)
    config["vocab_size"] = VOCAB
    config["decoder"]["vocab_size"] = VOCAB
    config["resampler"]["num_media_embeds"] = MAX_FRAMES
    config["video_config"] = {"num_frames": 3, "max_frames": MAX_FRAMES, "video_token_id": VID,
                              "video_end_token_id": VID_END}
    cpath = os.path.join(FIXTURES, "kosmos_video_tiny_config.json")
    with open(cpath, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print("wrote", cpath, os.path.getsize(cpath), "bytes")


if __name__ == "__main__":
    main()
