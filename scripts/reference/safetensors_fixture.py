"""Reference fixtures for the Swift safetensors reader (Tests/KosmosTensorTests/SafeTensorsTests.swift).

Writes, with Python's own `safetensors` package (safetensors.torch.save_file):

  Tests/Fixtures/safetensors_python.safetensors      one tensor per dtype (F32, F16, BF16, I64, I32,
                                                     U8, BOOL), a scalar, empty tensors, special
                                                     values (inf, -inf, NaN, subnormals, max half),
                                                     F32 sources with PyTorch's own F16/BF16 roundings
                                                     of them, and a __metadata__ map
  Tests/Fixtures/safetensors_python_expected.json    every tensor's dtype, shape and values as Python
                                                     decodes them (floats as repr() of the float32
                                                     value in strings, so "nan"/"inf" need no
                                                     special case; integers as JSON numbers; bools
                                                     as true/false); plus the sharded checkpoint's
  Tests/Fixtures/sharded/                            two shards + model.safetensors.index.json in the
                                                     Hugging Face layout

Run from the repository root (the venv needs torch, numpy and safetensors):

    /work/venv/bin/python scripts/reference/safetensors_fixture.py

Output is deterministic (fixed seed), so rerunning it leaves the committed fixtures unchanged.
"""

import json
import math
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")


def float_text(value):
    """repr() of a float32 value; exact when parsed back as a double and narrowed to Float."""
    return repr(float(np.float32(value)))


def describe(tensor):
    """dtype, shape and flat values of a tensor as Python decodes it."""
    dtype = {
        torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
        torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL",
    }[tensor.dtype]
    flat = tensor.reshape(-1)
    if tensor.dtype.is_floating_point:
        values = [float_text(v) for v in flat.to(torch.float32).tolist()]
    elif tensor.dtype == torch.bool:
        values = [bool(v) for v in flat.tolist()]
    else:
        values = [int(v) for v in flat.tolist()]
    return {"dtype": dtype, "shape": list(tensor.shape), "values": values}


def main():
    generator = torch.Generator().manual_seed(20240229)
    randn = lambda *shape: torch.randn(*shape, generator=generator)

    half_specials = torch.tensor(
        [math.inf, -math.inf, math.nan, 65504.0, -65504.0, 2.0 ** -24, -(2.0 ** -24),
         2.0 ** -14 - 2.0 ** -24, 2.0 ** -14, 0.0, -0.0, 1.0, 1.0 / 3.0, 3.140625],
        dtype=torch.float32)
    bf16_specials = torch.tensor(
        [math.inf, -math.inf, math.nan, 3.3895313892515355e38, -3.3895313892515355e38, 2.0 ** -133,
         -(2.0 ** -126), 1.1754943508222875e-38, 0.0, -0.0, 1.0, 1.0 / 3.0, 65504.0, 1.0e-30],
        dtype=torch.float32)

    # Sources whose F16/BF16 roundings PyTorch computes, to compare with the Swift writer's rounding:
    # exact ties (round half to even, both directions), overflow thresholds, subnormal ties, and
    # random values spread over many binades.
    tie_sources = [
        1.0 + 2.0 ** -11, 1.0 + 3.0 * 2.0 ** -11, 65519.0, 65520.0, 65535.0, 2.0 ** -25,
        3.0 * 2.0 ** -26, 1.5 * 2.0 ** -24, 2.5 * 2.0 ** -24, 2.0 ** -14 - 2.0 ** -25,
        1.0 + 2.0 ** -8, 1.0 + 3.0 * 2.0 ** -8, 3.4028234663852886e38, 2.0 ** -149,
        1.0e-8, 1.0e5, -(1.0 + 2.0 ** -11), -65520.0, math.inf, -math.inf, math.nan,
    ]
    spread = randn(64) * torch.pow(2.0, torch.randint(-30, 20, (64,), generator=generator).float())
    rounding_source = torch.cat([torch.tensor(tie_sources, dtype=torch.float32), spread.float()])

    tensors = {
        "f32.values": torch.cat([randn(8), torch.tensor(
            [math.inf, -math.inf, math.nan, -0.0, 1.401298464324817e-45, 3.4028234663852886e38],
            dtype=torch.float32)]).reshape(2, 7),
        "f16.values": torch.cat([half_specials, randn(10)]).to(torch.float16).reshape(2, 3, 4),
        "bf16.values": torch.cat([bf16_specials, randn(10)]).to(torch.bfloat16).reshape(4, 6),
        "i64.values": torch.tensor([0, 1, -1, 2 ** 63 - 1, -(2 ** 63), 1234567890123], dtype=torch.int64).reshape(3, 2),
        "i32.values": torch.tensor([0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 123456789], dtype=torch.int32),
        "u8.values": torch.tensor([0, 1, 127, 128, 254, 255, 42], dtype=torch.uint8),
        "bool.values": torch.tensor([[True, False, True], [False, False, True]]),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "scalar.i64": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "empty.bf16": torch.zeros(2, 0, dtype=torch.bfloat16),
        "rounding.source": rounding_source,
        "rounding.f16": rounding_source.to(torch.float16),
        "rounding.bf16": rounding_source.to(torch.bfloat16),
        "unicode.naïve.wéight": torch.tensor([1.0, -2.0], dtype=torch.float32),
    }
    # One key only: safetensors serialises __metadata__ from a Rust HashMap, whose order changes
    # from run to run, and the fixture should be byte-identical whenever it is regenerated.
    metadata = {"note": "héllo ✓ \"quoted\" from scripts/reference/safetensors_fixture.py"}
    path = os.path.join(FIXTURES, "safetensors_python.safetensors")
    save_file(tensors, path, metadata=metadata)

    # The sharded checkpoint: HF `save_pretrained` layout written by hand with save_file.
    sharded_dir = os.path.join(FIXTURES, "sharded")
    os.makedirs(sharded_dir, exist_ok=True)
    shards = {
        "model-00001-of-00002.safetensors": {
            "model.embed.weight": randn(4, 3),
            "model.step": torch.tensor(3, dtype=torch.int64),
        },
        "model-00002-of-00002.safetensors": {
            "model.layers.0.fc.weight": randn(3, 3).to(torch.bfloat16),
            "model.layers.0.fc.bias": randn(3).to(torch.float16),
        },
    }
    weight_map = {}
    total_size = 0
    for shard_name, shard_tensors in shards.items():
        save_file(shard_tensors, os.path.join(sharded_dir, shard_name), metadata={"format": "pt"})
        for name, tensor in shard_tensors.items():
            weight_map[name] = shard_name
            total_size += tensor.numel() * tensor.element_size()
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(sharded_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")

    # Expected values come from reading the files back, i.e. exactly what Python decodes.
    loaded = load_file(path)
    sharded_loaded = {}
    for shard_name in shards:
        sharded_loaded.update(load_file(os.path.join(sharded_dir, shard_name)))
    expected = {
        "metadata": metadata,
        "tensors": {name: describe(t) for name, t in sorted(loaded.items())},
        "sharded": {
            "metadata": {"total_size": str(total_size)},
            "tensors": {name: describe(t) for name, t in sorted(sharded_loaded.items())},
        },
    }
    with open(os.path.join(FIXTURES, "safetensors_python_expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
