"""A tiny Kosmos-2 whose greedy output is written by hand, for the CLI tests of `kosmos ground`.

Run from the repository root: /work/venv/bin/python scripts/reference/kosmos2_scripted_reference.py
Starts from Tests/Fixtures/kosmos2_untied (vocabulary of the Kosmos-2 tokenizer fixtures) and
makes the text decoder a bigram table: every layer's out_proj and fc2 are zero (so each layer
passes its input through), a chain of tokens gets large one-hot embeddings (so the final layer
norm sees one direction per token, positions being small beside them), and the untied LM head maps
each chain token's direction to the next token of the chain. After the prompt's last token ("▁of")
greedy decoding then writes
    <phrase> dog</phrase><object><patch_index_0033><patch_index_0530></delimiter_of_multi_objects/>
    <patch_index_0600><patch_index_1023></object></s>
whatever the image. Writes Tests/Fixtures/kosmos2_scripted/ (float16 weights: small, and the chain
does not depend on rounding) and Tests/Fixtures/kosmos2_scripted_expected.json: the generated ids
and transformers' post-processing of them (clean text and entities with normalised boxes).
"""
import json
import os
import warnings

warnings.filterwarnings("ignore")
import sentencepiece as spm
import torch
from PIL import Image
from tokenizers import Tokenizer
from transformers import (CLIPImageProcessor, Kosmos2ForConditionalGeneration, Kosmos2Processor,
                          PreTrainedTokenizerFast)
from transformers.models.kosmos2.processing_kosmos2 import clean_text_and_extract_entities_with_bboxes

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.join(ROOT, "Tests", "Fixtures")
fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(os.path.join(FIX, "tokenizers", "hf_kosmos2_bpe.tokenizer.json")),
                               bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
processor = Kosmos2Processor(image_processor=CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
                             tokenizer=fast)
model = Kosmos2ForConditionalGeneration.from_pretrained(os.path.join(FIX, "kosmos2_untied")).eval()
image = Image.open(os.path.join(FIX, "images", "inputs", "rgb8_224x224.png")).convert("RGB")

prompt = "<grounding> An image of"
inputs = processor(text=prompt, images=image, num_image_tokens=4, return_tensors="pt")
last = inputs["input_ids"][0, -1].item()
# A bigram table cannot repeat a token, so one phrase with two boxes (the multi-object delimiter).
target = ("<phrase> dog</phrase><object><patch_index_0033><patch_index_0530></delimiter_of_multi_objects/>"
          "<patch_index_0600><patch_index_1023></object>")
chain_ids = [last] + fast(target, add_special_tokens=False)["input_ids"] + [2]
print("chain", chain_ids, fast.convert_ids_to_tokens(chain_ids))
states = chain_ids[:-1]  # tokens that need a direction
assert len(set(states)) == len(states), "a bigram chain cannot repeat a token"
d = model.config.text_config.embed_dim
assert len(states) <= d, f"{len(states)} chain tokens for {d} dimensions"

text = model.text_model.model
with torch.no_grad():
    for layer in text.layers:
        for p in (layer.self_attn.out_proj.weight, layer.self_attn.out_proj.bias, layer.ffn.fc2.weight, layer.ffn.fc2.bias):
            p.zero_()
    text.layer_norm.weight.fill_(1.0)
    text.layer_norm.bias.zero_()
    head = model.text_model.lm_head.weight
    head.zero_()
    for k, token in enumerate(states):
        direction = torch.full((d,), -1.0 / d)
        direction[k] += 1.0
        text.embed_tokens.weight[token] = 25.0 * torch.nn.functional.one_hot(torch.tensor(k), d).float()
    for k, token in enumerate(states):
        # The next token after `token` in the chain (each state token occurs once before the end).
        nxt = chain_ids[chain_ids.index(token) + 1]
        direction = torch.full((d,), -1.0 / d)
        direction[k] += 1.0
        head[nxt] += 8.0 * direction / direction.norm()

directory = os.path.join(FIX, "kosmos2_scripted")
model.half().save_pretrained(directory)
model = Kosmos2ForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()
with torch.no_grad():
    out = model.generate(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                         image_embeds_position_mask=inputs["image_embeds_position_mask"],
                         attention_mask=inputs["attention_mask"], max_new_tokens=40, do_sample=False,
                         no_repeat_ngram_size=3, use_cache=True)
generated = out[0, inputs["input_ids"].shape[1]:].tolist()
assert generated == chain_ids[1:], (generated, chain_ids[1:])
decoded = processor.decode(generated, skip_special_tokens=True)
cleaned, entities = clean_text_and_extract_entities_with_bboxes(decoded)
print(repr(decoded), cleaned, entities)
with open(os.path.join(FIX, "kosmos2_scripted_expected.json"), "w") as f:
    json.dump({"generator": "scripts/reference/kosmos2_scripted_reference.py", "prompt": prompt, "ids": generated,
               "decoded": decoded, "text": cleaned,
               "entities": [{"phrase": e[0], "start": e[1][0], "end": e[1][1], "boxes": [list(b) for b in e[2]]} for e in entities]},
              f, indent=1, ensure_ascii=False)
