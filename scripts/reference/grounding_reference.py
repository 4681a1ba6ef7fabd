"""Expected outputs of transformers' Kosmos-2 grounding post-processing on strings written for the test.

Run: venv/bin/python scripts/reference/grounding_reference.py  → Tests/Fixtures/grounding_expected.json
"""
import json
import os

from transformers.models.kosmos2.processing_kosmos2 import clean_text_and_extract_entities_with_bboxes

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
P = lambda i: f"<patch_index_{i:04d}>"
cases = [
    "<grounding> An image of<phrase> a snowman</phrase><object>" + P(44) + P(863) + "</object> warming himself by<phrase> a fire</phrase><object>" + P(5) + P(911) + "</object>.",
    "An image of a cat.",
    "",
    "   ",
    "<grounding><phrase> two dogs</phrase><object>" + P(0) + P(1023) + "</delimiter_of_multi_objects/>" + P(33) + P(66) + "</object> play.",
    "A<object>" + P(10) + P(10) + "</object> box without a phrase and<object>" + P(3) + P(99) + "</delimiter_of_multi_objects/>" + P(40) + P(40) + "</object>.",
    "<phrase>unclosed phrase<object>" + P(1) + P(2) + "</object> text",
    "<phrase> a</phrase> no object, then<phrase> b</phrase><object>" + P(7) + "</object> single index",
    "  leading spaces<phrase>  café au lait  </phrase><object>" + P(64) + P(130) + "</object>  trailing  ",
    "<phrase> 東京タワー</phrase><object>" + P(100) + P(200) + "</object> at night 🌃 and<phrase> 🐶</phrase><object>" + P(31) + P(32) + "</object>",
    "nested <phrase> outer <phrase> inner</phrase><object>" + P(5) + P(6) + "</object></phrase>",
    "<phrase> </phrase><object>" + P(2) + P(3) + "</object>",
    "tags <b>bold</b> and <unknown_tag> kept out<phrase> x</phrase><object>" + P(12) + P(45) + "</object>",
]
results = []
for text in cases:
    cleaned, entities = clean_text_and_extract_entities_with_bboxes(text)
    results.append({"input": text, "text": cleaned,
                    "entities": [{"phrase": e[0], "start": e[1][0], "end": e[1][1], "boxes": [list(b) for b in e[2]]} for e in entities]})
with open(os.path.join(ROOT, "Tests", "Fixtures", "grounding_expected.json"), "w") as f:
    json.dump({"generator": "scripts/reference/grounding_reference.py", "cases": results}, f, indent=1, ensure_ascii=False)
print(len(results), "cases")
