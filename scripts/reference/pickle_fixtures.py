#!/usr/bin/env python3
"""PyTorch checkpoint fixtures (Tests/Fixtures/pytorch/) for the restricted unpickler.

- state_dict.bin: `torch.save` (zip format) of a state dict with the dtypes a checkpoint has
  (float32, bfloat16, float16, float64, int64, int32, int8, uint8, bool), a transposed view
  (non-contiguous strides), slices sharing one storage at an offset, an nn.Parameter, a 0-d tensor
  and an empty one; expected.safetensors holds the same tensors made contiguous (safetensors' own
  writer), which the reader must reproduce bit for bit.
- evil_system.bin, evil_eval.bin, evil_exec.bin, evil_global.bin: torch.save of objects whose
  pickle calls os.system, builtins.eval, builtins.exec or imports subprocess.Popen; each must be
  refused naming the global, and nothing run (the payload would create a file: the test checks
  it is not there).
- harness_model.bin: Tests/Fixtures/harness/model's weights saved by torch.save (an OrderedDict, as
  a transformers `pytorch_model.bin` is), for loading a model directory from a .bin.
- legacy.bin: the pre-1.6 format (`_use_new_zipfile_serialization=False`), refused with a message.
- short_storage.bin: a checkpoint whose storage record for "w" (8 floats) was cut to 12 bytes, as a
  damaged download might be; refused naming the tensor and both sizes.

Run: /work/benchvenv/bin/python scripts/reference/pickle_fixtures.py (torch, safetensors).
"""
import collections
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "pytorch")
MARKER = "/tmp/kosmos-unpickler-pwned"


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def short_storage(path):
    """torch.save of {"w": 8 floats}, then the zip rewritten with that storage's record cut short."""
    import zipfile
    whole = path + ".whole"
    torch.save({"w": torch.arange(8, dtype=torch.float32)}, whole)
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if "/data/" in info.filename:
                data = data[:12]
            target.writestr(info, data)
    os.remove(whole)


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 5, generator=g)
    state = collections.OrderedDict()
    state["layer.weight"] = torch.randn(3, 4, generator=g)
    state["layer.bias"] = torch.nn.Parameter(torch.randn(4, generator=g), requires_grad=True)
    state["half"] = torch.randn(2, 3, generator=g).half()
    state["bf16"] = torch.randn(5, generator=g).bfloat16()
    state["double"] = torch.randn(2, 2, generator=g).double()
    state["ids"] = torch.arange(7, dtype=torch.int64) * 1_000_000_007
    state["int32"] = torch.tensor([-3, 2, 1 << 30], dtype=torch.int32)
    state["int8"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    state["uint8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    state["mask"] = torch.tensor([True, False, True])
    state["transposed"] = base.t()                      # strides (1, 5)
    state["rows"] = base[2:4]                           # storage offset 10
    state["column"] = base[:, 1]                        # stride 5, offset 1
    state["scalar"] = torch.tensor(2.5)
    state["empty"] = torch.zeros(0, 3)
    torch.save(state, os.path.join(OUT, "state_dict.bin"))
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, os.path.join(OUT, "expected.safetensors"))
    from safetensors.torch import load_file
    weights = load_file(os.path.join(ROOT, "Tests", "Fixtures", "harness", "model", "model.safetensors"))
    torch.save(collections.OrderedDict(sorted(weights.items())), os.path.join(OUT, "harness_model.bin"))
    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.bin"), _use_new_zipfile_serialization=False)
    short_storage(os.path.join(OUT, "short_storage.bin"))
    import builtins
    import subprocess
    torch.save({"w": torch.ones(2), "x": Evil(os.system, "touch " + MARKER)}, os.path.join(OUT, "evil_system.bin"))
    torch.save({"x": Evil(builtins.eval, "open(%r, 'w')" % MARKER)}, os.path.join(OUT, "evil_eval.bin"))
    torch.save({"x": Evil(builtins.exec, "open(%r, 'w')" % MARKER)}, os.path.join(OUT, "evil_exec.bin"))
    torch.save({"x": Evil(subprocess.Popen, ["touch", MARKER])}, os.path.join(OUT, "evil_global.bin"))
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))


if __name__ == "__main__":
    main()
