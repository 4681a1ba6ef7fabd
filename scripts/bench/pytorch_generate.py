"""torchscale incremental (KV-cached) greedy decoding of the 1.3B decoder, for `kosmos bench model --cases generate`.

Run: venv/bin/python scripts/bench/pytorch_generate.py   (random weights, float32, torch's default threads)"""
import time
import warnings

warnings.filterwarnings("ignore")
import torch
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder

config = DecoderConfig(decoder_embed_dim=2048, decoder_attention_heads=32, decoder_ffn_embed_dim=8192,
                       decoder_layers=24, vocab_size=32002, xpos_rel_pos=True, subln=True)
decoder = Decoder(config, embed_tokens=torch.nn.Embedding(32002, 2048)).eval()
tokens = torch.randint(0, 32002, (1, 64))
with torch.no_grad():
    state = {"is_first_step": True}
    logits, _ = decoder(tokens, incremental_state=state)
    state["is_first_step"] = False
    sequence = torch.cat([tokens, logits[:, -1:].argmax(-1)], dim=1)
    start = time.perf_counter()
    for _ in range(63):
        logits, _ = decoder(sequence, incremental_state=state)
        sequence = torch.cat([sequence, logits[:, -1:].argmax(-1)], dim=1)
    seconds = time.perf_counter() - start
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}: decode {63 / seconds:.2f} tokens/s")
