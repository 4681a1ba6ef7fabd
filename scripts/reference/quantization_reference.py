"""The quantized weight formats (docs/model-format.md) in numpy, written independently of the C
kernels, and a fixture of their results for Tests/KosmosTensorTests/QuantizationTests.swift.

q8: per group of G columns, d = f16(max|x| / 127) (float32 division, float16 round to nearest
even), q = clamp(rint(x / d), -127, 127) (0 when d == 0); w = q * d.
q4: per group, lo = min x, hi = max x, d = f16((hi - lo) / 15), m = f16(lo),
n = clamp(rint((x - m) / d), 0, 15) (0 when d == 0); w = n * d + m (one rounding).
q4 packing: each 32-column block is 16 bytes, byte i = n[i] | n[i + 16] << 4.

Run: venv/bin/python scripts/reference/quantization_reference.py
"""
import numpy as np
from safetensors.numpy import save_file

f32 = np.float32


def q8_quantize(w, group):
    rows, k = w.shape
    g = w.reshape(rows, k // group, group).astype(f32)
    amax = np.abs(g).max(axis=2)
    d16 = (amax / f32(127)).astype(np.float16)
    d = d16.astype(f32)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d == 0, f32(0), np.rint(g / np.where(d == 0, f32(1), d)))
    q = np.clip(q, -127, 127).astype(np.int8)
    return q.reshape(rows, k), d16


def q8_dequantize(q, d16, group):
    rows, k = q.shape
    d = d16.astype(f32)[:, :, None]
    return (q.reshape(rows, k // group, group).astype(f32) * d).reshape(rows, k)


def q4_quantize(w, group):
    rows, k = w.shape
    g = w.reshape(rows, k // group, group).astype(f32)
    lo, hi = g.min(axis=2), g.max(axis=2)
    d16 = ((hi - lo) / f32(15)).astype(np.float16)
    m16 = lo.astype(np.float16)
    d, m = d16.astype(f32)[:, :, None], m16.astype(f32)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(d == 0, f32(0), np.rint((g - m) / np.where(d == 0, f32(1), d)))
    n = np.clip(n, 0, 15).astype(np.uint8).reshape(rows, k // 32, 32)
    packed = (n[:, :, :16] | (n[:, :, 16:] << 4)).astype(np.uint8)
    return packed.reshape(rows, k // 2), d16, m16


def q4_dequantize(packed, d16, m16, group):
    rows, half = packed.shape
    k = half * 2
    b = packed.reshape(rows, k // 32, 16)
    n = np.concatenate([b & 15, b >> 4], axis=2).reshape(rows, k // group, group).astype(np.float64)
    d = d16.astype(np.float64)[:, :, None]
    m = m16.astype(np.float64)[:, :, None]
    # n*d + m is exact in float64 (small integers times float16 values), so rounding it once to
    # float32 is the fused multiply-add the format defines.
    return (n * d + m).astype(f32).reshape(rows, k)


def activations_quantize(x):
    """The rows kernels' activations (decoding): per 32-column block dx = max|x| / 127 (float32),
    qx = clamp(rint(x / dx), -127, 127); the products use qx * dx."""
    rows, k = x.shape
    b = x.reshape(rows, k // 32, 32).astype(f32)
    dx = (np.abs(b).max(axis=2) / f32(127))[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(dx == 0, f32(0), np.rint(b / np.where(dx == 0, f32(1), dx)))
    q = np.clip(q, -127, 127)
    return (q.astype(np.float64) * dx.astype(np.float64)).reshape(rows, k)


def weights(rng, rows, k):
    w = (rng.standard_normal((rows, k)) * 0.02).astype(f32)
    w[0, 5] = 0.9          # an outlier in the first group
    w[1, :] = 0              # an all-zero row
    w[2, :] = f32(-0.0123)   # a constant row (q4: d == 0)
    w[3, :] *= f32(1e-4)     # tiny values (float16 subnormal scales)
    w[4, 40:72] = f32(3.5)   # a constant stretch over a group boundary
    return w


def main():
    rng = np.random.default_rng(23)
    out = {}
    for group in (32, 64):
        w = weights(rng, 7, 128)
        x = rng.standard_normal((5, 128)).astype(f32)
        q, d = q8_quantize(w, group)
        p, d4, m4 = q4_quantize(w, group)
        deq8, deq4 = q8_dequantize(q, d, group), q4_dequantize(p, d4, m4, group)
        xq = activations_quantize(x)
        tag = f"g{group}"
        out |= {
            f"{tag}.weight": w, f"{tag}.x": x,
            f"{tag}.q8.levels": q, f"{tag}.q8.scales": d, f"{tag}.q8.dequantized": deq8,
            f"{tag}.q8.product": (x.astype(np.float64) @ deq8.astype(np.float64).T),
            f"{tag}.q8.rows_product": xq @ deq8.astype(np.float64).T,
            f"{tag}.q4.rows_product": xq @ deq4.astype(np.float64).T,
            f"{tag}.q4.levels": p, f"{tag}.q4.scales": d4, f"{tag}.q4.minimums": m4, f"{tag}.q4.dequantized": deq4,
            f"{tag}.q4.product": (x.astype(np.float64) @ deq4.astype(np.float64).T),
        }
    save_file(out, "Tests/Fixtures/quantization_reference.safetensors")
    print("wrote Tests/Fixtures/quantization_reference.safetensors")


if __name__ == "__main__":
    main()
