"""PyTorch CPU timings for the cases of `kosmos bench model` (torch's default threads), float32, or
with --bf16 the models in bfloat16 (`model.to(torch.bfloat16)`, as people run PyTorch for inference;
its matmuls go to oneDNN; the train case then runs under torch.autocast("cpu", torch.bfloat16), mixed
precision with float32 weights, as `kosmos bench model --dtype bfloat16` runs it). The generate case
times decode steps only, after the prompt.

The kosmos25 case (only when named) is a random Kosmos-2.5 of the released size
(transformers' Kosmos2_5ForConditionalGeneration with its default configuration) reading one
4,096-patch page: the vision encode (get_image_features), then the <ocr> prompt prefilled with the
image embeddings and 32 new tokens decoded greedily with the cache, as `kosmos bench model --cases
kosmos25` runs it.

Run: venv/bin/python scripts/bench/pytorch_model.py [--repeats 3] [--bf16] [--cases vit,decoder,train,generate,kosmos25]
(venv: scripts/bench/requirements.txt)."""
import argparse
import resource
import time
import warnings

warnings.filterwarnings("ignore")
import torch
import torch.nn.functional as F
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder
from transformers import CLIPVisionConfig, CLIPVisionModel

parser = argparse.ArgumentParser()
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--cases", default="vit,decoder,train")
parser.add_argument("--bf16", action="store_true", help="inference cases in bfloat16, train under autocast-bf16")
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


print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {dtype}")
cases = args.cases.split(",")
if "vit" in cases:
    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                             num_attention_heads=16, patch_size=14, image_size=224)).eval().to(dtype)
    pixels = torch.randn(1, 3, 224, 224).to(dtype)
    with torch.no_grad():
        timed("ViT-L/14 encode, 1 image 224×224", lambda: tower(pixel_values=pixels))
    del tower
if "decoder" in cases:
    config = DecoderConfig(decoder_embed_dim=2048, decoder_attention_heads=32, decoder_ffn_embed_dim=8192,
                           decoder_layers=24, vocab_size=32002, xpos_rel_pos=True, subln=True)
    decoder = Decoder(config, embed_tokens=torch.nn.Embedding(32002, 2048)).eval().to(dtype)
    tokens = torch.randint(0, 32002, (1, 128))
    with torch.no_grad():
        timed("1.3B decoder forward, 128 tokens", lambda: decoder(tokens),
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    del decoder
if "generate" in cases:
    config = DecoderConfig(decoder_embed_dim=2048, decoder_attention_heads=32, decoder_ffn_embed_dim=8192,
                           decoder_layers=24, vocab_size=32002, xpos_rel_pos=True, subln=True)
    decoder = Decoder(config, embed_tokens=torch.nn.Embedding(32002, 2048)).eval().to(dtype)
    prompt = torch.randint(0, 32002, (1, 64))
    rates = []

    def generate():
        with torch.no_grad():
            state = {"is_first_step": True}
            logits, _ = decoder(prompt, incremental_state=state)
            state["is_first_step"] = False
            sequence = torch.cat([prompt, logits[:, -1:].argmax(-1)], dim=1)
            start = time.perf_counter()
            for _ in range(63):
                logits, _ = decoder(sequence, incremental_state=state)
                sequence = torch.cat([sequence, logits[:, -1:].argmax(-1)], dim=1)
            rates.append(63 / (time.perf_counter() - start))

    timed("1.3B decoder, 64-token prompt + 64 new (greedy)", generate)
    print(f"{'':48s} decode {max(rates):.2f} tokens/s (best; steps after the prompt only), "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB", flush=True)
    del decoder
if "kosmos25" in cases:
    from transformers import Kosmos2_5Config, Kosmos2_5ForConditionalGeneration
    config = Kosmos2_5Config()
    config._attn_implementation = "sdpa"
    model = Kosmos2_5ForConditionalGeneration(config).eval().to(dtype)
    side, depth = 64, 2 + config.vision_config.patch_embed_hidden_size
    patches = torch.randn(1, side * side, depth)
    patches[0, :, 0] = torch.arange(side * side) // side + 1
    patches[0, :, 1] = torch.arange(side * side) % side + 1
    patches = patches.to(dtype)
    with torch.no_grad():
        timed("Kosmos-2.5 vision encode, 4,096 patches", lambda: model.get_image_features(patches))
        embeds = model.get_image_features(patches).pooler_output
    n = config.latent_query_num
    ids = torch.tensor([[0, 100283] + [0] * n + [100284, 100282]])
    mask = torch.tensor([[0, -1] + [1] * n + [-1, 0]])
    rates = []

    def page():
        with torch.no_grad():
            image = model.get_image_features(patches).pooler_output
            out = model(input_ids=ids, image_embeds=image, image_embeds_position_mask=mask, use_cache=True)
            cache, token = out.cache, out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(31):
                out = model(input_ids=token, cache=cache, use_cache=True)
                cache, token = out.cache, out.logits[:, -1:].argmax(-1)
            rates.append(31 / (time.perf_counter() - start))

    timed("Kosmos-2.5 page: 2,052-token prompt + 32 new", page)
    print(f"{'':48s} decode {max(rates):.2f} tokens/s (best; steps after the prompt only), "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB", flush=True)
    del model
if "train" in cases:
    config = DecoderConfig(decoder_embed_dim=256, decoder_attention_heads=4, decoder_ffn_embed_dim=1024,
                           decoder_layers=4, vocab_size=32002, xpos_rel_pos=True, subln=True)
    decoder = Decoder(config, embed_tokens=torch.nn.Embedding(32002, 256))
    opt = torch.optim.AdamW(decoder.parameters(), lr=1e-4)
    tokens = torch.randint(0, 32002, (8, 128))
    targets = torch.cat([tokens[:, 1:], torch.full((8, 1), -100)], dim=1)

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits, _ = decoder(tokens)
        F.cross_entropy(logits.float().reshape(-1, 32002), targets.reshape(-1), ignore_index=-100).backward()
        opt.step()

    timed("train step, 4 layers d=256, vocab 32k, 8×128", step)
