"""torchscale incremental (KV-cached) greedy decoding of the 1.3B decoder, for `kosmos bench generate`
and `kosmos bench model --cases generate`: the generate case of pytorch_model.py (random weights,
torch's default threads; --bf16 for bfloat16, --repeats N).

Run: venv/bin/python scripts/bench/pytorch_generate.py [--bf16] [--repeats N]"""
import os
import sys

script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_model.py")
os.execv(sys.executable, [sys.executable, script, "--cases", "generate", "--repeats", "1"] + sys.argv[1:])
