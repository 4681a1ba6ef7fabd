"""lm-evaluation-harness with a PyTorch Kosmos-1 decoder, beside `kosmos eval task` on the same
model directory and file: the harness's own HellaSwag rules, a torchscale decoder built from the
directory's config.json with its decoder weights, our SentencePiece tokenizer (BOS + pieces, as the
Kosmos-1 processor encodes a prompt), requests batched as HFLM batches them (longest first, padded
on the right, one forward per batch of --batch-size; no KV cache, no shared prefix).

Run: venv/bin/python scripts/bench/pytorch_harness.py --model DIR --data hellaswag_val.jsonl [--limit N] [--bf16] [--batch-size 8]
(venv: scripts/bench/requirements.txt plus scripts/reference/requirements.txt's lm-eval and sentencepiece).
Prints the harness's acc/acc_norm and the seconds `simple_evaluate` took (the model already loaded).
"""
import argparse
import json
import os
import shutil
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
import sentencepiece as spm
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torchscale.architecture.config import DecoderConfig
from torchscale.architecture.decoder import Decoder

import lm_eval
from lm_eval.api.model import TemplateLM
from lm_eval.tasks import TaskManager

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--data", required=True, help="HellaSwag JSONL as published (rowanz/hellaswag)")
parser.add_argument("--limit", type=int)
parser.add_argument("--bf16", action="store_true")
parser.add_argument("--batch-size", type=int, default=8)
args = parser.parse_args()
dtype = torch.bfloat16 if args.bf16 else torch.float32

config = json.load(open(os.path.join(args.model, "config.json")))
d = config["decoder"]
decoder = Decoder(DecoderConfig(decoder_embed_dim=d["decoder_embed_dim"], decoder_attention_heads=d["decoder_attention_heads"],
                                decoder_ffn_embed_dim=d["decoder_ffn_embed_dim"], decoder_layers=d["decoder_layers"],
                                vocab_size=d["vocab_size"], xpos_rel_pos=d.get("xpos_rel_pos", True), subln=d.get("subln", True),
                                max_target_positions=d.get("max_target_positions", 2048), no_scale_embedding=d.get("no_scale_embedding", True),
                                dropout=0.0),
                  embed_tokens=torch.nn.Embedding(d["vocab_size"], d["decoder_embed_dim"], padding_idx=d.get("padding_idx", 0)))
with safe_open(os.path.join(args.model, "model.safetensors"), "pt") as f:
    state = {k[len("decoder."):]: f.get_tensor(k).float() for k in f.keys() if k.startswith("decoder.")}
missing, unexpected = decoder.load_state_dict(state, strict=False)
assert not unexpected and all("xpos" in m for m in missing), (missing, unexpected)
decoder = decoder.to(dtype).eval()
sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model, "tokenizer.model"))
BOS = config.get("bos_token_id") or 1


class KosmosLM(TemplateLM):
    @property
    def eot_token_id(self):
        return config.get("eos_token_id") or 2

    @property
    def prefix_token_id(self):
        return BOS

    def tok_encode(self, string, add_special_tokens=None, **kwargs):
        return [BOS] + sp.encode(string)

    def _loglikelihood_tokens(self, requests, **kwargs):
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1] + requests[i][2]))
        out = [None] * len(requests)
        with torch.no_grad():
            for start in range(0, len(order), args.batch_size):
                batch = order[start:start + args.batch_size]
                inputs = [(requests[i][1] + requests[i][2])[:-1] for i in batch]
                width = max(len(x) for x in inputs)
                tokens = torch.tensor([x + [0] * (width - len(x)) for x in inputs])
                logits, _ = decoder(tokens)
                for row, i in enumerate(batch):
                    continuation = requests[i][2]
                    end = len(inputs[row])
                    logp = F.log_softmax(logits[row, end - len(continuation):end].float(), dim=-1)
                    target = torch.tensor(continuation)
                    out[i] = (float(logp.gather(1, target[:, None]).sum()), bool((logp.argmax(-1) == target).all()))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm=False):
        raise NotImplementedError


tmp = tempfile.mkdtemp()
rows = [json.loads(l) for l in open(args.data) if l.strip()]
hf = os.path.join(tmp, "hellaswag.jsonl")
with open(hf, "w") as f:
    for r in rows:
        f.write(json.dumps(dict(r, label=str(r["label"]))) + "\n")
src = os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "hellaswag")
folder = os.path.join(tmp, "tasks")
os.makedirs(folder)
shutil.copy(os.path.join(src, "utils.py"), folder)
body = [l for l in open(os.path.join(src, "hellaswag.yaml")).read().splitlines()
        if not l.startswith(("task:", "dataset_path:", "dataset_name:", "tag:", "  - multiple_choice"))]
with open(os.path.join(folder, "local_hellaswag.yaml"), "w") as f:
    f.write("task: local_hellaswag\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    train: %s\n    validation: %s\n" % (hf, hf)
            + "\n".join(body) + "\n")
lm = KosmosLM()
start = time.perf_counter()
result = lm_eval.simple_evaluate(model=lm, tasks=["local_hellaswag"], task_manager=TaskManager(include_path=folder),
                                 num_fewshot=0, limit=args.limit, bootstrap_iters=0)
seconds = time.perf_counter() - start
metrics = result["results"]["local_hellaswag"]
items = args.limit or len(rows)
print("pytorch harness hellaswag: %d items, %.2f s (%.3f s/item), acc %.4f acc_norm %.4f, threads %d, %s"
      % (items, seconds, seconds / items, metrics["acc,none"], metrics["acc_norm,none"], torch.get_num_threads(), dtype))
shutil.rmtree(tmp)
