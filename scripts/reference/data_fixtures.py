#!/usr/bin/env python3
"""Writes the small data-set fixtures in Tests/Fixtures/data (stdlib only: json, gzip, tarfile).

Run from the repository root: python3 scripts/reference/data_fixtures.py
Images are copied from Tests/Fixtures/images/inputs so no image library is needed.
"""
import gzip, io, json, os, shutil, tarfile

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SRC = os.path.join(ROOT, "Tests", "Fixtures", "images", "inputs")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "data")
os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
os.makedirs(os.path.join(OUT, "shards"), exist_ok=True)

IMAGES = {"a.jpg": "rgb_7x5.jpg", "b.png": "rgb8_1x1.png", "c.png": "bilevel_17x9.png"}
for dst, src in IMAGES.items():
    shutil.copyfile(os.path.join(SRC, src), os.path.join(OUT, "images", dst))
# A corrupt image: a JPEG signature followed by garbage.
with open(os.path.join(OUT, "images", "corrupt.jpg"), "wb") as f:
    f.write(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 4)

def read(name):
    with open(os.path.join(OUT, "images", name), "rb") as f:
        return f.read()

# Text JSONL: 5 good records among bad ones (malformed, missing text, empty text, blank line).
text_lines = [
    json.dumps({"text": "hello world"}),
    "{not json",
    json.dumps({"text": "the quick brown fox"}),
    json.dumps({"meta": "no text here"}),
    json.dumps({"text": "   "}),
    json.dumps({"text": "one two three"}),
    "",
    json.dumps({"text": "jumps over", "meta": {"pile_set_name": "x"}}),
    json.dumps({"text": "lazy dog"}),
]
body = "\n".join(text_lines) + "\n"
with open(os.path.join(OUT, "text.jsonl"), "w") as f:
    f.write(body)
# gzip: two members concatenated (as `cat a.gz b.gz` makes), with a long repetitive record so
# the compressor uses back-references and dynamic Huffman blocks.
long_text = " ".join(["lorem ipsum dolor sit amet"] * 200)
with open(os.path.join(OUT, "text.jsonl.gz"), "wb") as f:
    f.write(gzip.compress(body.encode(), mtime=0))
    f.write(gzip.compress((json.dumps({"text": long_text}) + "\n").encode(), mtime=0))
# A third member of varied words (dynamic Huffman block) and a fourth stored uncompressed (level 0).
import random
rng = random.Random(0)
words = ["alpha", "beta", "gamma", "delta", "kosmos", "image", "caption", "swift", "tensor", "zeta", "omega"]
varied = " ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(600))
with open(os.path.join(OUT, "text.jsonl.gz"), "ab") as f:
    f.write(gzip.compress((json.dumps({"text": varied}) + "\n").encode(), mtime=0))
    f.write(gzip.compress((json.dumps({"text": "stored block"}) + "\n").encode(), compresslevel=0, mtime=0))
# What text.jsonl.gz decompresses to, for the inflate test.
with open(os.path.join(OUT, "text_gz_expected.jsonl"), "w") as f:
    f.write(body + json.dumps({"text": long_text}) + "\n" + json.dumps({"text": varied}) + "\n"
            + json.dumps({"text": "stored block"}) + "\n")
with open(os.path.join(OUT, "corrupt.jsonl.gz"), "wb") as f:
    f.write(gzip.compress(body.encode(), mtime=0)[:40])

# COCO captions: 5 annotations; one for a missing image, one for an unknown id, one empty caption,
# one for a corrupt image.
coco = {
    "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.png"},
               {"id": 3, "file_name": "missing.jpg"}, {"id": 4, "file_name": "corrupt.jpg"}],
    "annotations": [
        {"image_id": 1, "caption": "a tiny photo"},
        {"image_id": 2, "caption": "one red pixel"},
        {"image_id": 3, "caption": "this image is missing"},
        {"image_id": 9, "caption": "unknown image id"},
        {"image_id": 1, "caption": "  "},
        {"image_id": 4, "caption": "a corrupt image"},
        {"image_id": 2, "caption": "another caption for b"},
    ],
}
with open(os.path.join(OUT, "images", "captions.json"), "w") as f:
    json.dump(coco, f)

# WebDataset: two shards. Shard 0: 000 (jpg+txt), 001 (png+json), 002 (jpg only: unpaired).
# Shard 1: 003 (png+txt), 004 (txt only: unpaired), 005 (corrupt jpg+txt), 006 (json with empty caption + png).
def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))

def shard(path, members, fmt=tarfile.USTAR_FORMAT):
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members:
            add(tar, name, data)

shard0 = [("000.jpg", read("a.jpg")), ("000.txt", b"a tiny photo\n"),
          ("001.png", read("b.png")), ("001.json", json.dumps({"caption": "one red pixel"}).encode()),
          ("002.jpg", read("a.jpg"))]
shard1 = [("003.png", read("c.png")), ("003.txt", b"black and white"),
          ("004.txt", b"caption without image"),
          ("005.jpg", read("corrupt.jpg")), ("005.txt", b"corrupt"),
          ("006.png", read("b.png")), ("006.json", json.dumps({"caption": ""}).encode())]
shard(os.path.join(OUT, "shards", "shard-000.tar"), shard0)
shard(os.path.join(OUT, "shards", "shard-001.tar"), shard1, fmt=tarfile.GNU_FORMAT)
# Truncated: shard 1 cut inside 005.jpg's data (003 survives, 004 is unpaired, the rest is lost).
with open(os.path.join(OUT, "shards", "shard-001.tar"), "rb") as f:
    full = f.read()
with open(os.path.join(OUT, "truncated.tar"), "wb") as f:
    f.write(full[:512 * 7 + 10])
# A long member name (GNU 'L' record) to exercise long names.
longkey = "deep/" + "x" * 120
shard(os.path.join(OUT, "longname.tar"), [(longkey + ".png", read("b.png")), (longkey + ".txt", b"long name")],
      fmt=tarfile.GNU_FORMAT)

# Interleaved documents; paths relative to the JSONL file.
inter = [
    json.dumps({"segments": [{"text": "look at"}, {"image": "images/a.jpg"}, {"text": "and"}, {"image": "images/b.png"}]}),
    json.dumps({"segments": [{"image": "images/c.png"}, {"text": "a picture first"}]}),
    json.dumps({"segments": [{"text": "missing"}, {"image": "images/missing.jpg"}]}),
    json.dumps({"segments": []}),
    json.dumps({"segments": [{"video": "x.mp4"}]}),
    "[1, 2",
]
with open(os.path.join(OUT, "interleaved.jsonl"), "w") as f:
    f.write("\n".join(inter) + "\n")
print("wrote", OUT)
