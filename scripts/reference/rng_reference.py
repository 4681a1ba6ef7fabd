"""Independent Python implementation of KosmosTensor's RandomGenerator, for a fixture.

xoshiro256** seeded by splitmix64 (as published by Blackman & Vigna), then the conversions
RandomGenerator documents: floats from the top 24 bits, normals by Box-Muller in double precision
rounded to float32. Run: python scripts/reference/rng_reference.py
Writes Tests/Fixtures/rng_reference.json.
"""
import json
import math
import os
import struct

MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Xoshiro:
    def __init__(self, seed):
        s = seed
        self.s = []
        for _ in range(4):
            s, v = splitmix64(s)
            self.s.append(v)

    def next(self):
        s0, s1, s2, s3 = self.s
        result = (rotl((s1 * 5) & MASK, 7) * 9) & MASK
        t = (s1 << 17) & MASK
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        self.s = [s0, s1, s2, s3]
        return result


def to_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def normal_pair(g):
    u1 = ((g.next() >> 11) + 1) * 2.0 ** -53
    u2 = (g.next() >> 11) * 2.0 ** -53
    radius = math.sqrt(-2.0 * math.log(u1))
    angle = 2.0 * math.pi * u2
    return radius * math.cos(angle), radius * math.sin(angle)


cases = []
for seed in [0, 1, 42, 2**63 + 12345]:
    g = Xoshiro(seed)
    raw = [str(g.next()) for _ in range(8)]
    g = Xoshiro(seed)
    floats = [to_f32((g.next() >> 40) * 2.0 ** -24) for _ in range(8)]
    g = Xoshiro(seed)
    normals = []
    while len(normals) < 9:  # fillNormal of 9 values: four pairs and one cosine half
        z0, z1 = normal_pair(g)
        normals.append(to_f32(z0))
        if len(normals) < 9:
            normals.append(to_f32(z1))
    cases.append({"seed": str(seed), "raw": raw, "floats": floats, "normals": normals})

path = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "rng_reference.json"))
with open(path, "w") as f:
    json.dump({"generator": "scripts/reference/rng_reference.py", "cases": cases}, f, indent=1)
print("wrote", path)
