"""Audio reference fixtures: Whisper log-mel features, a tiny random Whisper model with encoder outputs and
gradients, and the Kosmos-1 assembly extended with an audio path (text + image + audio in one sequence).

Run from the repository root: venv/bin/python scripts/reference/audio_reference.py
Writes
  (a) Tests/Fixtures/audio/whisper_features.safetensors
  (b) Tests/Fixtures/whisper_tiny/ (save_pretrained of WhisperForConditionalGeneration + WhisperFeatureExtractor)
      and Tests/Fixtures/whisper_encoder_expected.safetensors
  (c) Tests/Fixtures/kosmos_audio_tiny.safetensors and Tests/Fixtures/kosmos_audio_tiny_config.json

Clip formulas (a). No audio is committed: every clip is regenerated from these integer-only formulas. All
arithmetic is on (64-bit) integers; `>>` on a negative number is an arithmetic shift (floor division by 2^k,
Python's and Swift's `>>` on Int); `//` and `%` are only applied to non-negative operands.

  noise(n, seed, shift):        # the C-library LCG, state in [0, 2^31); products stay below 2^62
      x = seed
      for i in 0..<n:
          x = (1103515245 * x + 12345) % 2147483648
          s = (x >> 15) - 32768      # x >> 15 is in [0, 65535], so s in [-32768, 32767]
          out[i] = s >> shift
  triangle(n, period, amplitude):   # period even, half = period / 2
      for i in 0..<n:
          p = i % period
          out[i] = p < half ? -amplitude + (2 * amplitude * p) // half
                            :  amplitude - (2 * amplitude * (p - half)) // half
  square(n, period, amplitude):     # period even
      out[i] = (i % period) < period / 2 ? amplitude : -amplitude
  silence(n):  out[i] = 0
  mix(n, period, amplitude, seed, shift):  out[i] = triangle(n, period, amplitude)[i] + noise(n, seed, shift)[i]
  (every value fits in int16: the parameters below keep |sample| <= 32767 or the noise's -32768.)

Waveform handed to the extractor: mono -> float32(int16) / 32768.0 (exact). Stereo (channels 2, the two int16
channels l and r): float32((float32(l) / 32768.0) + (float32(r) / 32768.0)) / 2.0 evaluated in float32 — this equals
(l + r) / 65536 exactly. The clip list (kinds, parameters, lengths, feature sizes) is in the safetensors metadata
"clips" (JSON) and in CLIPS below; "formula" in the metadata repeats this description.

Feature extraction: WhisperFeatureExtractor(feature_size=F)(waveform, sampling_rate=16000,
return_attention_mask=True, return_tensors="np"). With torch installed (as here) transformers' __call__ uses
`_torch_extract_fbank_features` (float32 torch.stft), not the numpy `_np_extract_fbank_features`; the script prints
both and the difference between them, and stores the numpy path's frames for one clip as a second reference.
"""
import copy
import json
import os
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import logging as hf_logging
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder
from transformers import CLIPVisionConfig, CLIPVisionModel
from flamingo_pytorch import PerceiverResampler

hf_logging.set_verbosity_error()
ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
SR = 16000

# ---------------------------------------------------------------------------------------------------------------
# (a) clips and features
# ---------------------------------------------------------------------------------------------------------------

FORMULA = (
    "noise(n,seed,shift): x=seed; per sample x=(1103515245*x+12345)%2^31; s=(x>>15)-32768; out=s>>shift "
    "(arithmetic shift). triangle(n,period,amplitude): half=period/2; p=i%period; out = p<half ? "
    "-amplitude+(2*amplitude*p)//half : amplitude-(2*amplitude*(p-half))//half. square(n,period,amplitude): "
    "(i%period)<period/2 ? amplitude : -amplitude. silence: 0. mix: triangle+noise (same n). "
    "waveform = float32(int16)/32768; stereo: (l/32768 + r/32768)/2 in float32 == (l+r)/65536 exactly. "
    "Channel specs: 'channels_spec' lists one generator per channel."
)

# Every clip: name, kind, n_samples, channels, feature_size, per-channel generator specs, storage.
CLIPS = [
    dict(name="clip0", kind="noise", n_samples=1600, channels=1, feature_size=80,
         channels_spec=[dict(kind="noise", seed=1, shift=2)], storage="strided", note="0.1 s noise"),
    dict(name="clip1", kind="mix", n_samples=16000, channels=1, feature_size=80,
         channels_spec=[dict(kind="mix", period=124, amplitude=12000, seed=2, shift=2)], storage="strided",
         note="1 s triangle + noise; also clip_norm (do_normalize=True) and clip1.features_strided_np"),
    dict(name="clip2", kind="noise", n_samples=479840, channels=1, feature_size=80,
         channels_spec=[dict(kind="noise", seed=3, shift=1)], storage="strided", note="29.99 s noise"),
    dict(name="clip3", kind="triangle", n_samples=480000, channels=1, feature_size=80,
         channels_spec=[dict(kind="triangle", period=200, amplitude=16000)], storage="strided", note="30 s triangle"),
    dict(name="clip4", kind="noise", n_samples=720000, channels=1, feature_size=80,
         channels_spec=[dict(kind="noise", seed=4, shift=0)], storage="strided",
         note="45 s full-scale noise, truncated to 30 s by the extractor defaults"),
    dict(name="clip5", kind="silence", n_samples=32000, channels=1, feature_size=80,
         channels_spec=[dict(kind="silence")], storage="strided", note="2 s silence"),
    dict(name="clip6", kind="square", n_samples=48000, channels=1, feature_size=80,
         channels_spec=[dict(kind="square", period=64, amplitude=32767)], storage="strided",
         note="3 s full-scale square wave"),
    dict(name="clip7", kind="stereo", n_samples=40000, channels=2, feature_size=80,
         channels_spec=[dict(kind="triangle", period=90, amplitude=20000), dict(kind="noise", seed=5, shift=1)],
         storage="strided", note="2.5 s stereo: left triangle, right noise; mono = (l+r)/2 in float32"),
    dict(name="clip8", kind="noise", n_samples=1, channels=1, feature_size=80,
         channels_spec=[dict(kind="noise", seed=6, shift=0)], storage="strided", note="1 sample"),
    dict(name="clip9", kind="mix", n_samples=80000, channels=1, feature_size=128,
         channels_spec=[dict(kind="mix", period=78, amplitude=10000, seed=7, shift=2)], storage="strided",
         note="5 s mix at 128 mel bins"),
    dict(name="clip10", kind="mix", n_samples=4000, channels=1, feature_size=8,
         channels_spec=[dict(kind="mix", period=50, amplitude=12000, seed=8, shift=2)], storage="full",
         extractor="tiny", note="0.25 s mix through the tiny extractor (feature_size 8, n_samples 5120, 32 frames)"),
]


def _noise(n, seed, shift):
    out = np.empty(n, dtype=np.int64)
    x = seed
    for i in range(n):
        x = (1103515245 * x + 12345) % 2147483648
        out[i] = ((x >> 15) - 32768) >> shift
    return out


def _triangle(n, period, amplitude):
    assert period % 2 == 0
    half = period // 2
    p = np.arange(n, dtype=np.int64) % period
    up = -amplitude + (2 * amplitude * p) // half
    down = amplitude - (2 * amplitude * np.maximum(p - half, 0)) // half
    return np.where(p < half, up, down)


def _square(n, period, amplitude):
    assert period % 2 == 0
    p = np.arange(n, dtype=np.int64) % period
    return np.where(p < period // 2, amplitude, -amplitude).astype(np.int64)


def _channel(spec, n):
    kind = spec["kind"]
    if kind == "noise":
        v = _noise(n, spec["seed"], spec["shift"])
    elif kind == "triangle":
        v = _triangle(n, spec["period"], spec["amplitude"])
    elif kind == "square":
        v = _square(n, spec["period"], spec["amplitude"])
    elif kind == "silence":
        v = np.zeros(n, dtype=np.int64)
    elif kind == "mix":
        v = _triangle(n, spec["period"], spec["amplitude"]) + _noise(n, spec["seed"], spec["shift"])
    else:
        raise ValueError(kind)
    assert v.min() >= -32768 and v.max() <= 32767, (spec, v.min(), v.max())
    return v.astype(np.int16)


def clip_samples(kind, n_samples, channels, channels_spec=None):
    """int16 samples [channels, n_samples] from the integer formulas in the module docstring.

    `channels_spec` lists one generator spec per channel; without it the defaults of CLIPS for that kind are used
    (looked up by kind)."""
    if channels_spec is None:
        channels_spec = next(c["channels_spec"] for c in CLIPS if c["kind"] == kind and c["channels"] == channels)
    assert len(channels_spec) == channels
    return np.stack([_channel(s, n_samples) for s in channels_spec])


def waveform_of(samples):
    chans = [samples[c].astype(np.float32) / np.float32(32768.0) for c in range(samples.shape[0])]
    if len(chans) == 1:
        return chans[0]
    assert len(chans) == 2
    return ((chans[0] + chans[1]) / np.float32(2.0)).astype(np.float32)


def tiny_extractor():
    """The tiny extractor: chunk_length 0.32 s. The constructor computes n_samples = chunk_length * sampling_rate
    = 5120.0 (a float) and nb_max_frames = 32.0, and np.pad then rejects the float pad width, so both are reset to
    ints after construction."""
    fe = WhisperFeatureExtractor(feature_size=8, chunk_length=0.32)
    fe.n_samples = 5120
    fe.nb_max_frames = 32
    return fe


def replicate_torch_path(fe, waveform):
    """The default path re-done step by step (to expose the log-spec max before the clamp)."""
    n = fe.n_samples
    w = waveform[:n]
    w = np.pad(w, (0, n - len(w)))
    wt = torch.from_numpy(w[None].astype(np.float32))
    window = torch.hann_window(fe.n_fft)
    stft = torch.stft(wt, fe.n_fft, fe.hop_length, window=window, return_complex=True)
    magnitudes = (stft[..., :-1].abs() ** 2).contiguous()
    mel = torch.from_numpy(fe.mel_filters).to(torch.float32).T @ magnitudes
    log_spec = torch.clamp(mel, min=1e-10).log10()
    mx = log_spec.max()
    out = (torch.maximum(log_spec, mx - 8.0) + 4.0) / 4.0
    return out[0].numpy(), float(mx), stft.shape[-1]


def frame_selection(n_frames, content_frames):
    idx = set(range(0, n_frames, 25)) | set(range(n_frames - 5, n_frames))
    # frames around the end of the content (where signal meets zero padding), so short clips are covered too
    for f in range(max(0, content_frames - 3), min(n_frames, content_frames + 3)):
        idx.add(f)
    return np.array(sorted(idx), dtype=np.int64)


def features_fixture():
    out, clips_meta = {}, []
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}; "
          f"torch MKL available: {torch.backends.mkl.is_available()}")
    extractors = {}
    for clip in CLIPS:
        name, F_ = clip["name"], clip["feature_size"]
        samples = clip_samples(clip["kind"], clip["n_samples"], clip["channels"], clip["channels_spec"])
        waveform = waveform_of(samples)
        fe = tiny_extractor() if clip.get("extractor") == "tiny" else WhisperFeatureExtractor(feature_size=F_)
        extractors[F_] = fe
        res = fe(waveform, sampling_rate=SR, return_attention_mask=True, return_tensors="np")
        feats, mask = res["input_features"][0], res["attention_mask"][0]
        assert feats.dtype == np.float32 and feats.shape == (F_, fe.nb_max_frames), feats.shape
        mine, mx, n_stft = replicate_torch_path(fe, waveform)
        assert np.array_equal(mine, feats), f"{name}: replication differs by {np.abs(mine - feats).max()}"
        # the numpy path (float64 FFT) for comparison
        np_feats = fe._np_extract_fbank_features(np.pad(waveform[:fe.n_samples], (0, max(0, fe.n_samples - len(waveform))))[None], "cpu")[0]
        content = min(clip["n_samples"], fe.n_samples)
        content_frames = -(-content // fe.hop_length)
        print(f"{name}: {clip['note']}: n={clip['n_samples']} F={F_} features {feats.shape} stft frames {n_stft} "
              f"(last dropped) mask ones {int(mask.sum())}/{mask.shape[0]} (ceil(n/160)={content_frames}) "
              f"logspec max {mx:.6f} min feature {feats.min():.6f} max feature {feats.max():.6f} "
              f"|torch-np| max {np.abs(np_feats - feats).max():.3g}")
        assert int(mask.sum()) == content_frames and mask[:content_frames].all()
        out[f"{name}.attention_mask"] = torch.from_numpy(mask.astype(np.int64))
        out[f"{name}.max"] = torch.tensor([mx], dtype=torch.float32)
        meta = {k: clip[k] for k in ("name", "kind", "n_samples", "channels", "feature_size", "channels_spec", "note")}
        meta.update(n_samples_max=fe.n_samples, n_frames=fe.nb_max_frames, storage=clip["storage"])
        if clip["storage"] == "full":
            out[f"{name}.features"] = torch.from_numpy(feats.copy())
        else:
            idx = frame_selection(feats.shape[1], content_frames)
            out[f"{name}.features_strided"] = torch.from_numpy(feats[:, idx].copy())
            out[f"{name}.frame_indices"] = torch.from_numpy(idx)
            if name == "clip1":
                out[f"{name}.features_strided_np"] = torch.from_numpy(np_feats[:, idx].astype(np.float32))
        if clip.get("extractor") == "tiny":
            meta["extractor"] = "WhisperFeatureExtractor(feature_size=8, chunk_length=0.32) then n_samples=5120, nb_max_frames=32"
        clips_meta.append(meta)

        if name == "clip1":   # do_normalize=True on the same clip
            resn = fe(waveform, sampling_rate=SR, return_attention_mask=True, return_tensors="np", do_normalize=True)
            fn = resn["input_features"][0]
            idx = frame_selection(fn.shape[1], content_frames)
            out["clip_norm.features_strided"] = torch.from_numpy(fn[:, idx].copy())
            out["clip_norm.frame_indices"] = torch.from_numpy(idx)
            out["clip_norm.attention_mask"] = torch.from_numpy(resn["attention_mask"][0].astype(np.int64))
            # the normalisation done by hand: mean/var over the first n samples (numpy float32), padding stays 0
            wpad = np.pad(waveform, (0, fe.n_samples - len(waveform)))
            v = wpad[:len(waveform)]
            normed = (wpad - v.mean()) / np.sqrt(v.var() + 1e-7)
            normed[len(waveform):] = 0.0
            check = fe._torch_extract_fbank_features(normed[None].astype(np.float32))[0]
            print(f"clip_norm: do_normalize=True, |hand-normalised - extractor| = {np.abs(check - fn).max():.3g}; "
                  f"mean {v.mean():.6g} var {v.var():.6g} (float32 numpy)")
            clips_meta.append(dict(name="clip_norm", kind="mix", n_samples=clip["n_samples"], channels=1,
                                   feature_size=80, channels_spec=clip["channels_spec"], storage="strided",
                                   n_samples_max=fe.n_samples, n_frames=fe.nb_max_frames,
                                   note="clip1 with do_normalize=True"))
        if name == "clip4":   # >30 s: equal to the first 30 s
            first30 = fe(waveform[:480000], sampling_rate=SR, return_attention_mask=True, return_tensors="np")
            print(f"clip4: features equal to those of its first 480000 samples: "
                  f"{np.array_equal(first30['input_features'][0], feats)}")

    # the clamp is per example: a batch of clip0 + clip5 (silence) gives each its own max
    fe80 = WhisperFeatureExtractor(feature_size=80)
    a = waveform_of(clip_samples("noise", 1600, 1, CLIPS[0]["channels_spec"]))
    b = np.zeros(32000, dtype=np.float32)
    batched = fe80([a, b], sampling_rate=SR, return_attention_mask=True, return_tensors="np")["input_features"]
    print("per-example clamp: batch [clip0, silence] equals separate calls:",
          np.array_equal(batched[0], fe80(a, sampling_rate=SR, return_tensors="np")["input_features"][0]),
          "silence row all", np.unique(batched[1]))

    out["mel_filters_80"] = torch.from_numpy(WhisperFeatureExtractor(feature_size=80).mel_filters.astype(np.float32))
    out["mel_filters_128"] = torch.from_numpy(WhisperFeatureExtractor(feature_size=128).mel_filters.astype(np.float32))
    out["mel_filters_8"] = torch.from_numpy(tiny_extractor().mel_filters.astype(np.float32))
    out["hann_window"] = torch.hann_window(400)   # float32, periodic (what the default torch path uses)
    from transformers.audio_utils import window_function
    w64 = window_function(400, "hann")
    print("hann: torch periodic == numpy window_function(400,'hann') (periodic):",
          np.abs(w64 - out["hann_window"].numpy()).max(), "w[0]", w64[0], "w[200]", w64[200], "symmetric would end", np.hanning(400)[-1])
    print("mel filter dtype in extractor:", fe80.mel_filters.dtype, fe80.mel_filters.shape)

    os.makedirs(os.path.join(FIXTURES, "audio"), exist_ok=True)
    path = os.path.join(FIXTURES, "audio", "whisper_features.safetensors")
    metadata = {
        "generator": "scripts/reference/audio_reference.py",
        "clips": json.dumps(clips_meta),
        "formula": FORMULA,
        "extractor_call": "WhisperFeatureExtractor(feature_size=F)(waveform, sampling_rate=16000, return_attention_mask=True, return_tensors='np')",
        "code_path": f"transformers {transformers.__version__} WhisperFeatureExtractor.__call__ -> _torch_extract_fbank_features (torch {torch.__version__} installed, float32 torch.stft)",
    }
    save_file({k: v.contiguous().clone() for k, v in out.items()}, path, metadata=metadata)
    print("wrote", path, os.path.getsize(path), "bytes")
    return out


# ---------------------------------------------------------------------------------------------------------------
# (b) tiny Whisper
# ---------------------------------------------------------------------------------------------------------------

def perturb_layer_norms(model):
    names = []
    with torch.no_grad():
        for mname, module in model.named_modules():
            if isinstance(module, torch.nn.LayerNorm):
                for pname, p in module.named_parameters(recurse=False):
                    p.add_(torch.randn_like(p) * 0.1)
                    names.append(f"{mname}.{pname}")
    return names


def whisper_tiny_fixture():
    config = WhisperConfig(vocab_size=64, num_mel_bins=8, d_model=24, encoder_layers=2, encoder_attention_heads=4,
                           encoder_ffn_dim=48, decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=48,
                           max_source_positions=16, max_target_positions=32,
                           # the defaults (50256/50257) are outside a 64-token vocabulary (padding_idx of the
                           # decoder's embedding must be < vocab_size)
                           pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                           begin_suppress_tokens=None, attn_implementation="eager")
    torch.manual_seed(3)
    model = WhisperForConditionalGeneration(config)
    model.eval()
    perturbed = perturb_layer_norms(model)
    directory = os.path.join(FIXTURES, "whisper_tiny")
    model.save_pretrained(directory, safe_serialization=True)
    tiny_extractor().save_pretrained(directory)
    print("whisper_tiny files:", {f: os.path.getsize(os.path.join(directory, f)) for f in sorted(os.listdir(directory))})
    print("perturbed LayerNorms:", len(perturbed))

    encoder = model.model.encoder
    print("encoder embed_scale", encoder.embed_scale, "(not used in WhisperEncoder.forward);",
          "embed_positions.requires_grad", encoder.embed_positions.weight.requires_grad,
          "k_proj bias", encoder.layers[0].self_attn.k_proj.bias, "q_proj bias", encoder.layers[0].self_attn.q_proj.bias is not None)
    from transformers.models.whisper.modeling_whisper import sinusoids
    print("embed_positions == sinusoids(16, 24):", torch.equal(encoder.embed_positions.weight, sinusoids(16, 24)))

    features = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(5))
    weights = torch.randn(2, 16, 24, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        hidden32 = encoder(features).last_hidden_state
    encoder64 = copy.deepcopy(encoder).double()
    x = features.double().requires_grad_(True)
    hidden = encoder64(x).last_hidden_state
    loss = (hidden * weights.double()).sum()
    loss.backward()
    out = {"input_features": features, "last_hidden_state": hidden.detach().float(),
           "last_hidden_state_float32": hidden32, "loss_weights": weights,
           "loss": loss.detach().float().reshape(1), "input_features_grad": x.grad.float()}
    no_grad = []
    for name, p in encoder64.named_parameters():
        if p.grad is not None:
            out[f"grad.{name}"] = p.grad.detach().float()
        else:
            no_grad.append(name)
    print("encoder params without grad:", no_grad)
    print("float32 vs float64 hidden max diff:", (hidden32.double() - hidden).abs().max().item())
    path = os.path.join(FIXTURES, "whisper_encoder_expected.safetensors")
    save_file({k: v.contiguous().clone() for k, v in out.items()}, path,
              metadata={"generator": "scripts/reference/audio_reference.py",
                        "model": "Tests/Fixtures/whisper_tiny", "loss": "(last_hidden_state * loss_weights).sum(), float64"})
    print("wrote", path, os.path.getsize(path), "bytes; loss", loss.item(),
          "grads", sum(1 for k in out if k.startswith("grad.")))


# ---------------------------------------------------------------------------------------------------------------
# (c) Kosmos-1 + audio
# ---------------------------------------------------------------------------------------------------------------

VOCAB, DIM, PAD, IMG, IMG_END, AUD, AUD_END, IMAGE_SLOTS, AUDIO_SLOTS = 42, 32, 0, 38, 39, 40, 41, 4, 3


def audio_encoder_config():
    return WhisperConfig(num_mel_bins=8, d_model=24, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=48,
                         max_source_positions=16, attn_implementation="eager")


class KosmosAudio(torch.nn.Module):
    """kosmos_reference.py's Kosmos (decoder, vision_model, perceiver, image_proj) plus audio_model (WhisperEncoder),
    audio_perceiver and audio_proj."""

    def __init__(self):
        super().__init__()
        config = DecoderConfig(decoder_embed_dim=DIM, decoder_attention_heads=4, decoder_ffn_embed_dim=64,
                               decoder_layers=2, vocab_size=VOCAB, xpos_rel_pos=True, subln=True)
        self.decoder = Decoder(config, embed_tokens=torch.nn.Embedding(VOCAB, DIM, padding_idx=PAD))
        self.vision_model = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=16,
            patch_size=8, attn_implementation="eager"))
        self.perceiver = PerceiverResampler(dim=24, depth=1, dim_head=6, heads=4, num_latents=IMAGE_SLOTS,
                                            num_media_embeds=1, ff_mult=2)
        self.image_proj = torch.nn.Linear(24, DIM, bias=False)
        self.audio_model = WhisperEncoder(audio_encoder_config())
        self.audio_perceiver = PerceiverResampler(dim=24, depth=1, dim_head=6, heads=4, num_latents=AUDIO_SLOTS,
                                                  num_media_embeds=1, ff_mult=2)
        self.audio_proj = torch.nn.Linear(24, DIM, bias=False)

    def forward(self, tokens, padding, image_slots, audio_slots, pixels, input_features):
        features = self.vision_model(pixel_values=pixels).last_hidden_state
        images = self.image_proj(self.perceiver(features).squeeze(1))
        audio_states = self.audio_model(input_features).last_hidden_state
        audio = self.audio_proj(self.audio_perceiver(audio_states).squeeze(1))
        embeddings = self.decoder.embed_tokens(tokens)
        embeddings = embeddings.masked_scatter(image_slots.unsqueeze(-1), images.reshape(-1, DIM).to(embeddings.dtype))
        embeddings = embeddings.masked_scatter(audio_slots.unsqueeze(-1), audio.reshape(-1, DIM).to(embeddings.dtype))
        logits, _ = self.decoder(tokens, self_attn_padding_mask=padding, token_embeddings=embeddings)
        return logits


def audio_batch():
    g = torch.Generator().manual_seed(9)
    text = lambda n: torch.randint(1, 37, (n,), generator=g).tolist()   # ids in 1..36 (kosmos_reference's draw)
    image = [IMG] + [PAD] * IMAGE_SLOTS + [IMG_END]
    audio = [AUD] + [PAD] * AUDIO_SLOTS + [AUD_END]
    first = [1] + text(2) + image + text(2) + audio + text(3) + audio + text(2)
    second = [1] + text(3) + audio + text(4)
    length = len(first)
    tokens = torch.full((2, length), PAD, dtype=torch.long)
    tokens[0, :len(first)] = torch.tensor(first)
    tokens[1, :len(second)] = torch.tensor(second)
    padding = torch.zeros(2, length, dtype=torch.bool)
    padding[1, len(second):] = True
    image_slots = torch.zeros(2, length, dtype=torch.bool)
    audio_slots = torch.zeros(2, length, dtype=torch.bool)
    for row, seq in enumerate([first, second]):
        for i, t in enumerate(seq):
            if t == IMG:
                image_slots[row, i + 1:i + 1 + IMAGE_SLOTS] = True
            if t == AUD:
                audio_slots[row, i + 1:i + 1 + AUDIO_SLOTS] = True
    assert not (image_slots & audio_slots).any()
    return tokens, padding, image_slots, audio_slots, torch.tensor([len(first), len(second)])


def audio_loss_of(logits, tokens, padding, image_slots, audio_slots):
    targets = tokens[:, 1:].clone()
    targets[padding[:, 1:] | image_slots[:, 1:] | audio_slots[:, 1:]] = -100
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)


def kosmos_audio_fixture():
    torch.manual_seed(21)
    model = KosmosAudio()
    with torch.no_grad():
        perturbed = []
        for mname, module in model.named_modules():
            # every LayerNorm (torch's or torchscale's, which is torch.nn.LayerNorm without apex)
            if isinstance(module, torch.nn.LayerNorm):
                for pname, p in module.named_parameters(recurse=False):
                    p.add_(torch.randn_like(p) * 0.1)
                    perturbed.append(f"{mname}.{pname}")
    print("kosmos_audio perturbed LayerNorm params:", len(perturbed))
    tokens, padding, image_slots, audio_slots, lengths = audio_batch()
    pixels = torch.randn(1, 3, 16, 16)
    input_features = torch.randn(3, 8, 32)
    out = {f"model.{k}": v.detach().clone().float() for k, v in model.state_dict().items()}
    out.update(tokens=tokens, lengths=lengths, pixels=pixels.clone(), input_features=input_features.clone())

    model64 = KosmosAudio()
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    logits = model64(tokens, padding, image_slots, audio_slots, pixels.double(), input_features.double())
    loss = audio_loss_of(logits, tokens, padding, image_slots, audio_slots)
    loss.backward()
    out["logits"] = logits.detach().float()
    out["loss"] = loss.detach().float().reshape(1)
    no_grad = []
    for name, p in model64.named_parameters():
        if p.grad is not None:
            out[f"grad.{name}"] = p.grad.detach().float()
            assert p.grad.abs().sum() > 0 or "padding" in name, name
        else:
            no_grad.append(name)
    print("kosmos_audio params without grad:", no_grad)

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        step_loss = audio_loss_of(model(tokens, padding, image_slots, audio_slots, pixels, input_features),
                                  tokens, padding, image_slots, audio_slots)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
    out["adamw_losses"] = torch.tensor(losses)
    path = os.path.join(FIXTURES, "kosmos_audio_tiny.safetensors")
    save_file({k: v.contiguous().clone() for k, v in out.items()}, path,
              metadata={"generator": "scripts/reference/audio_reference.py"})
    print("tokens", tokens.tolist(), "lengths", lengths.tolist())
    print("wrote", path, os.path.getsize(path), "bytes; loss", loss.item(), "float32 first step", losses[0],
          "params with grad", sum(1 for k in out if k.startswith("grad.")))
    print("adamw_losses", losses)

    with open(os.path.join(FIXTURES, "kosmos_tiny_config.json")) as f:
        config = json.load(f)
    config["vocab_size"] = VOCAB
    config["decoder"]["vocab_size"] = VOCAB
    config["audio_config"] = {
        "encoder": {"num_mel_bins": 8, "d_model": 24, "encoder_layers": 2, "encoder_attention_heads": 4,
                    "encoder_ffn_dim": 48, "max_source_positions": 16, "activation_function": "gelu"},
        "feature_extractor": {"feature_size": 8, "sampling_rate": 16000, "hop_length": 160, "n_fft": 400,
                              "chunk_length": 0.32},
        "connector": "perceiver",
        "resampler": {"dim": 24, "depth": 1, "dim_head": 6, "heads": 4, "num_latents": AUDIO_SLOTS,
                      "num_media_embeds": 1, "ff_mult": 2},
        "num_audio_tokens": AUDIO_SLOTS,
        "audio_token_id": AUD,
        "audio_end_token_id": AUD_END,
    }
    cpath = os.path.join(FIXTURES, "kosmos_audio_tiny_config.json")
    with open(cpath, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    c = audio_encoder_config()
    print("audio encoder WhisperConfig defaults: dropout", c.dropout, "attention_dropout", c.attention_dropout,
          "activation_dropout", c.activation_dropout, "encoder_layerdrop", c.encoder_layerdrop, "activation",
          c.activation_function, "scale_embedding", c.scale_embedding,
          "layer_norm eps", model.audio_model.layer_norm.eps)


def main():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    features_fixture()
    whisper_tiny_fixture()
    kosmos_audio_fixture()


if __name__ == "__main__":
    main()
