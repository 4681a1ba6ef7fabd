"""PyTorch CPU timings of the cases `kosmos bench kernels` and `kosmos bench gemm` measure, for
comparison on the same machine (2 threads, float32). Run: venv/bin/python scripts/bench/pytorch_kernels.py"""
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)
hidden = torch.randn(128, 8192)
w, b = torch.randn(8192), torch.randn(8192)
logits = torch.randn(128, 32002)
targets = torch.randint(0, 32002, (128,))
q, k, v = (torch.randn(1, 32, 128, 64) for _ in range(3))


def ce():
    x = logits.clone().requires_grad_(True)
    F.cross_entropy(x, targets).backward()


def timed(name, fn, repeats=10):
    with torch.no_grad() if name != "cross-entropy fwd+bwd 128×32002" else torch.enable_grad():
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(f"{name:40s}{times[0]:<10.3f} {times[len(times) // 2]:.3f}")


print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
timed("layer norm 128×8192", lambda: F.layer_norm(hidden, (8192,), w, b))
timed("softmax 128×32002", lambda: torch.softmax(logits, -1))
timed("log-softmax 128×32002", lambda: torch.log_softmax(logits, -1))
timed("gelu 128×8192", lambda: F.gelu(hidden))
timed("add 128×8192 + 8192", lambda: hidden + b)
timed("cross-entropy fwd+bwd 128×32002", ce)
timed("causal attention 32 heads × 128 × 64", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
for n in (512, 2048):
    a, c = torch.randn(n, n), torch.randn(n, n)
    a @ c
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        a @ c
        ts.append(time.perf_counter() - t)
    print(f"matmul {n}²: {2 * n ** 3 / min(ts) / 1e9:.1f} GFLOP/s")
