"""Issue 18: the method sites of the zoo's architectures (tests/compat/zoo.py) resolve to
exactly the modules the docs name -- checked by the trainable count of every method on the
text tower, computed by hand from each tiny config -- and the methods that promise it start
exactly at the base model.

Tiny configs (zoo.py): hidden 32, feed-forward 64, 2 blocks, 2 heads of 16; the Llama-style
LMs (Gemma2, Phi-3, LLaVA-NeXT's and Idefics3's Llama, PaliGemma's Gemma) have one
key/value head (keys and values 16 wide); OPT (BLIP-2), BERT, RoBERTa and T5 have full-width
keys (32).  T5 has 2 encoder + 2 decoder blocks, the decoder with cross-attention too.
"""

import pytest
import torch

from repspace.methods import apply_method, count_parameters, make_config
from tests.compat import zoo

R = W = K = 2  # LoRA rank, adapter width, AdaLink rank
P = 3  # virtual tokens

LORA_LLAMA = 2 * R * ((32 + 32) + (32 + 16))  # q: 32->32, v: 32->16, 2 blocks
IA3_LLAMA = 2 * (16 + 16 + 64)  # k, v outputs; down_proj input
SITE = 2 * 32 * W + W + 32  # one bottleneck on a 32-wide output
LLAMA = dict(
    lora=LORA_LLAMA,
    ia3=IA3_LLAMA,
    adapter=4 * SITE,
    parallel=2 * SITE,
    adalink=2 * 32 * K,
    prefix=2 * 2 * P * 16,
    prompt=P * 32,
)
ENCODER = dict(
    lora=2 * 2 * R * 64,
    ia3=2 * (32 + 32 + 64),
    adapter=4 * SITE,
    parallel=2 * SITE,
    adalink=2 * 32 * K,
    prefix=2 * 2 * P * 32,
    prompt=P * 32,
)
EXPECTED = {
    "gemma2": LLAMA,
    # Phi-3: LoRA and IA3 adapt the fused qkv_proj (32 -> 32 + 16 + 16)
    "phi3": dict(LLAMA, lora=2 * R * (32 + 64), ia3=2 * (64 + 64)),
    "bert": ENCODER,
    "roberta": ENCODER,
    # 12 attention maps (4 self, 2 cross) x q/v or k/v; 10 adapter sites (6 attention outputs,
    # 4 feed-forward); prefixes on the 4 self-attentions
    "t5": dict(
        lora=12 * R * 64,
        ia3=12 * 32 + 4 * 64,
        adapter=10 * SITE,
        parallel=4 * SITE,
        adalink=2 * 32 * K,
        prefix=4 * 2 * P * 32,
        prompt=P * 32,
    ),
    # LMMs: AdaLink adds the image tokens' map (projector output 32 wide)
    "blip2": dict(ENCODER, adalink=2 * 2 * 32 * K),
    "paligemma": dict(LLAMA, adalink=2 * 2 * 32 * K),
    "idefics3": dict(LLAMA, adalink=2 * 2 * 32 * K),
    "llava_next": dict(LLAMA, adalink=2 * 2 * 32 * K),
    "qwen2_vl": dict(LLAMA, adalink=2 * 2 * 32 * K),
}
# parallel adapters beside attention too: one more per attention sublayer (query input 32
# wide, output projection 32 wide): 2 blocks, T5 6 (4 self-, 2 cross-attentions)
for _arch, _counts in EXPECTED.items():
    _counts["parallel_both"] = _counts["parallel"] + (6 if _arch == "t5" else 2) * SITE
# PT-PEFT builds both stages: the prefix, then LoRA (its default query/value sites) or the
# Houlsby adapter (after attention output and feed-forward), the prefix still trainable
for _counts in EXPECTED.values():
    _counts["pt_lora"] = _counts["prefix"] + _counts["lora"]
    _counts["pt_adapter"] = _counts["prefix"] + _counts["adapter"]
# BLIP-2 with a T5 language model: T5's text-tower counts, AdaLink on text and image tokens
EXPECTED["blip2_t5"] = dict(EXPECTED["t5"], adalink=2 * 2 * 32 * K)
EXPECTED["instructblip"] = dict(LLAMA, adalink=2 * 2 * 32 * K)
CONFIGS = {
    "lora": ("lora", dict(r=R)),
    "ia3": ("ia3", {}),
    "adapter": ("adapter", dict(width=W)),
    "parallel": ("adapter", dict(width=W, placement="parallel")),
    "parallel_both": (
        "adapter",
        dict(width=W, placement="parallel", parallel_sites=("attention", "ffn")),
    ),
    "adalink": ("adalink", dict(rank=K)),
    "prefix": ("prefix", dict(num_virtual_tokens=P)),
    "prompt": ("prompt", dict(num_virtual_tokens=P)),
    "pt_lora": ("pt_lora", dict(num_virtual_tokens=P, r=R)),
    "pt_adapter": ("pt_adapter", dict(num_virtual_tokens=P, width=W)),
}
IDENTITY = ("lora", "ia3", "adapter", "parallel", "parallel_both", "adalink")


def _build(arch):
    from tests.training.zoo_variants import BUILDERS

    torch.manual_seed(0)
    model, _ = {**zoo.ARCHITECTURES, **BUILDERS}[arch]()
    return model.eval()


def _inputs(arch, model):
    ids = torch.tensor([[20, 21, 22, 23, 24, 25]])  # ordinary tokens (specials come first)
    if arch == "t5":
        return dict(input_ids=ids, decoder_input_ids=ids[:, :4])
    cfg = model.config
    image_token = getattr(cfg, "image_token_id", None) or getattr(cfg, "image_token_index", None)
    if (
        image_token is None or arch == "qwen2_vl"
    ):  # Qwen2-VL: text only (its images need M-RoPE types)
        return dict(input_ids=ids)
    n = {"llava_next": 24, "idefics3": 1}.get(arch, 4)  # image tokens (BLIP-2: query tokens)
    x = dict(input_ids=torch.cat([torch.full((1, n), image_token), ids], 1))
    if arch == "blip2_t5":
        x["decoder_input_ids"] = ids[:, :4]
    if arch == "instructblip":  # the instruction also goes to the Q-Former
        x.update(qformer_input_ids=ids, qformer_attention_mask=torch.ones_like(ids))
    if arch == "llava_next":  # anyres: a 32x32 image as base crop + 2x2 grid (4 + 16 + 4 newlines)
        x.update(pixel_values=torch.randn(1, 5, 3, 16, 16), image_sizes=torch.tensor([[32, 32]]))
    elif arch == "idefics3":
        x.update(pixel_values=torch.randn(1, 1, 3, 16, 16))
    else:
        x.update(pixel_values=torch.randn(1, 3, 16, 16))
    if arch == "paligemma":
        x["token_type_ids"] = torch.zeros_like(x["input_ids"])
    return x


def _out(model, x):
    with torch.no_grad():
        out = model(**x)
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_trainable_counts_and_identity_at_init(arch):
    base = _build(arch)
    x = _inputs(arch, base)
    want = _out(base, x)
    for key, (method, options) in CONFIGS.items():
        model = apply_method(_build(arch), make_config(method, **options))
        assert count_parameters(model).trainable == EXPECTED[arch][key], (arch, key)
        got = _out(model, x)
        if key in IDENTITY:
            assert torch.equal(got, want), (arch, key)
        else:  # prefix / prompt (and PT-PEFT's prefix) add inputs by nature: they must change the outputs
            assert got.shape == want.shape and not torch.equal(got, want), (arch, key)
