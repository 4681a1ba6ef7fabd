"""PyTorch CPU timings for `kosmos bench audio` (torch's default threads): transformers'
WhisperFeatureExtractor on one 30-second clip (its default path: torch.stft in float32 when torch
is installed, as here; --numpy times its float64 numpy path too), and a random-initialised
whisper-base-shaped WhisperEncoder (d_model 512, 6 layers, 8 heads, ffn 2048, 80 mel bins, 1500
positions) on that clip's features, float32 or with --bf16 in bfloat16 (`encoder.to(torch.bfloat16)`).
The clip is the same integer noise `kosmos bench audio` makes (an LCG; see ModelBenchmark.audioClip).

Run: venv/bin/python scripts/bench/pytorch_audio.py [--repeats 5] [--bf16] [--numpy]
(venv: scripts/bench/requirements.txt plus transformers, as scripts/reference/requirements.txt pins it)."""
import argparse
import time
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

parser = argparse.ArgumentParser()
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--bf16", action="store_true")
parser.add_argument("--numpy", action="store_true", help="also time the extractor's numpy path")
args = parser.parse_args()
dtype = torch.bfloat16 if args.bf16 else torch.float32


def timed(name, fn, note=""):
    fn()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    print(f"{name:48s} best {times[0]:.3f} s  median {times[len(times) // 2]:.3f} s  {note}", flush=True)


def clip(n=480000):
    x, out = 1, np.empty(n, dtype=np.float32)
    for i in range(n):
        x = (1103515245 * x + 12345) % (1 << 31)
        out[i] = ((x >> 15) - 32768) / 32768.0
    return out


print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {dtype}")
wave = clip()
extractor = WhisperFeatureExtractor(feature_size=80)
timed("log-mel, one 30 s clip (80 bins)", lambda: extractor(wave, sampling_rate=16000, return_tensors="np"), "torch.stft path")
if args.numpy:
    timed("log-mel, one 30 s clip (80 bins)", lambda: extractor._np_extract_fbank_features(wave[None], "cpu"), "numpy path")
features = torch.from_numpy(extractor(wave, sampling_rate=16000, return_tensors="np")["input_features"]).to(dtype)
config = WhisperConfig(num_mel_bins=80, d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048,
                       max_source_positions=1500, attn_implementation="sdpa")
encoder = WhisperEncoder(config).eval().to(dtype)
with torch.no_grad():
    timed("Whisper-base encoder, one 30 s clip", lambda: encoder(features))
