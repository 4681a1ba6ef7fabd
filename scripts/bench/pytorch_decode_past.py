"""torchscale incremental decoding: ms per one-token step after a past of 128, 1,024 and 2,048 tokens,
for `kosmos bench generate --past 128,1024,2048 --steps 16` (the `small` decoder: 12 layers x 768,
12 heads, ffn 3072, vocab 32,002, xPos, sub-LN; random weights, float32, torch's default threads).

Run: venv/bin/python scripts/bench/pytorch_decode_past.py"""
import time
import warnings

warnings.filterwarnings("ignore")
import torch
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder

torch.manual_seed(0)
config = DecoderConfig(decoder_embed_dim=768, decoder_attention_heads=12, decoder_ffn_embed_dim=3072,
                       decoder_layers=12, vocab_size=32002, xpos_rel_pos=True, subln=True, max_target_positions=4096)
decoder = Decoder(config, embed_tokens=torch.nn.Embedding(32002, 768)).eval()
steps, repeats = 16, 3
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
with torch.no_grad():
    for past in (128, 1024, 2048):
        best = float("inf")
        for _ in range(repeats + 1):  # the first run warms up
            sequence = torch.randint(0, 32002, (1, past))
            state = {"is_first_step": True}
            decoder(sequence, incremental_state=state)
            state["is_first_step"] = False
            start = time.perf_counter()
            for _ in range(steps):
                sequence = torch.cat([sequence, torch.randint(0, 32002, (1, 1))], dim=1)
                decoder(sequence, incremental_state=state)
            best = min(best, (time.perf_counter() - start) / steps)
        print(f"past {past}: {1000 * best:.2f} ms per step")
