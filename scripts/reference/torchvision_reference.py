"""What transformers 5's default CLIPImageProcessor (its torchvision backend) makes of the image fixtures.

transformers 5's `CLIPImageProcessor` is torchvision-backed (the PIL one is `CLIPImageProcessorPil`): a PIL
image goes through convert_to_rgb (transparency onto white), becomes a uint8 CHW tensor, is resized by
torchvision's antialiased bicubic on uint8 (torch's int16-weight kernel), center-cropped (torchvision's
padding), then rescaled and normalised fused in float32. Writes Tests/Fixtures/images/torchvision/:
  pixel_values.safetensors   for every fixture of images/inputs and images/transparency and each config of
                             images/configs: every STRIDE-th value of pixel_values (`NAME.CONFIG.sample`), and
                             the whole tensor for the small "padcrop" config (`NAME.padcrop.full`)
  resized.safetensors        the uint8 [3, H, W] resize output (before the crop) of a few files, config "clip"
  index.json                 shapes, and the versions used
Run: /work/hubvenv/bin/python scripts/reference/torchvision_reference.py   (torch, torchvision, transformers 5, pillow)
"""
import json
import os

import numpy as np
import torch
import torchvision
import transformers
from PIL import Image
from safetensors.numpy import save_file
from torchvision.transforms.v2 import functional as tvF
from transformers.image_transforms import convert_to_rgb
from transformers.models.clip.image_processing_clip import CLIPImageProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "..", "..", "Tests", "Fixtures", "images")
OUT = os.path.join(IMAGES, "torchvision")
STRIDE = 97
RESIZED = ["rgb_640x480.jpg", "rgb_7x5.jpg", "rgba_97x61.png", "gray_301x199.jpg"]


def main():
    os.makedirs(OUT, exist_ok=True)
    configs = {}
    for name in sorted(os.listdir(os.path.join(IMAGES, "configs"))):
        with open(os.path.join(IMAGES, "configs", name)) as f:
            configs[name[:-5]] = json.load(f)
    with open(os.path.join(IMAGES, "transparency", "config.json")) as f:
        transparency_config = json.load(f)
    files = [("inputs", n) for n in sorted(os.listdir(os.path.join(IMAGES, "inputs")))]
    files += [("transparency", n) for n in sorted(os.listdir(os.path.join(IMAGES, "transparency")))
              if n.rsplit(".", 1)[-1] in ("png", "gif", "webp", "bmp")]
    values, resized, index = {}, {}, {"stride": STRIDE, "fixtures": {},
                                      "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                                                   "transformers": transformers.__version__,
                                                   "cpu_capability": torch.backends.cpu.get_cpu_capability()}}
    for folder, name in files:
        image = Image.open(os.path.join(IMAGES, folder, name))
        image.load()
        chosen = configs if folder == "inputs" else {"transparency": transparency_config}
        entry = {}
        for cname, cfg in chosen.items():
            processor = CLIPImageProcessor(**{k: v for k, v in cfg.items() if k != "image_processor_type"})
            pv = processor(images=image, return_tensors="pt")["pixel_values"][0].numpy().astype(np.float32)
            key = f"{folder}/{name}.{cname}"
            values[key + ".sample"] = np.ascontiguousarray(pv.reshape(-1)[::STRIDE])
            if cname in ("padcrop", "transparency"):
                values[key + ".full"] = np.ascontiguousarray(pv)
            entry[cname] = list(pv.shape)
        if folder == "inputs" and name in RESIZED:
            rgb = torch.from_numpy(convert_to_rgb(image, return_numpy=True)).permute(2, 0, 1).contiguous()
            processor = CLIPImageProcessor(**{k: v for k, v in configs["clip"].items() if k != "image_processor_type"})
            from transformers.image_processing_utils import SizeDict
            out = processor.resize(rgb[None], SizeDict(shortest_edge=224), resample=3)[0]
            resized[f"{name}.clip"] = np.ascontiguousarray(out.numpy())
        index["fixtures"][f"{folder}/{name}"] = entry
    save_file(values, os.path.join(OUT, "pixel_values.safetensors"))
    save_file(resized, os.path.join(OUT, "resized.safetensors"))
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
    print("wrote", len(values), "value tensors,", len(resized), "resized images;", index["versions"])


if __name__ == "__main__":
    main()
