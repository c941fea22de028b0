"""Tiny models (hidden 32, 2 layers, 16 px images) built offline from transformers configs,
shared by the capture and methods test conftests so both test the same models.

A plain module, not a conftest: importing it adds no fixtures.  Callers that must skip without
transformers call ``pytest.importorskip("transformers")`` before importing it.
"""

import contextlib
import copy
import warnings

import torch
import transformers

transformers.logging.set_verbosity_error()

VOCAB = 64
IMAGE_TOKEN = VOCAB - 1  # LLaVA's image placeholder: the last id, never drawn by tiny_inputs
TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    max_position_embeddings=64,
)
VISION = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    image_size=16,
    patch_size=8,
)


@contextlib.contextmanager
def quiet_library_deprecations():
    """Silence warnings from library code injecting methods into these models; peft 0.21
    calls a transformers-5 deprecated API, and warns about GPT-2's Conv1D fan_in_fan_out."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        yield


def build(cls, config):
    """``cls(config)`` in eval mode, seeded so every build of one config has the same weights."""
    torch.manual_seed(0)
    return cls(config).eval()


def bert_config(**overrides):
    return transformers.BertConfig(**TEXT, **overrides)


def gpt2_config():
    return transformers.GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )


def vit_config():
    return transformers.ViTConfig(**VISION)


def blip_config():
    # eos_token_id=2 is BlipTextConfig's default, spelled out because generation stops on it.
    return transformers.BlipConfig(
        text_config=dict(TEXT, bos_token_id=1, sep_token_id=2, pad_token_id=0, eos_token_id=2),
        # BLIP's default vision init range is 1e-10: states that small hide any difference;
        # use BERT's 0.02.
        vision_config=dict(VISION, initializer_range=0.02),
        projection_dim=16,
    )


def llava_config():
    return transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
            projection_dim=16,
        ),
        text_config=transformers.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
        ),
        image_token_index=IMAGE_TOKEN,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )  # drops CLS: 4 image tokens per image


# The trainable architectures, each with the head whose loss training uses.
_BUILDERS = {
    "blip": lambda: build(transformers.BlipForConditionalGeneration, blip_config()),
    "blip_vqa": lambda: build(transformers.BlipForQuestionAnswering, blip_config()),
    "llava": lambda: build(transformers.LlavaForConditionalGeneration, llava_config()),
    "gpt2": lambda: build(transformers.GPT2LMHeadModel, gpt2_config()),
    "bert": lambda: build(transformers.BertForSequenceClassification, bert_config(num_labels=5)),
}
ARCHS = tuple(_BUILDERS)
_cache: dict = {}


def tiny_model(arch: str):
    """A fresh copy of the tiny ``arch`` model (built once per process): methods inject in
    place, so callers never share one instance."""
    if arch not in _cache:
        _cache[arch] = _BUILDERS[arch]()
    return copy.deepcopy(_cache[arch])


def tiny_inputs(arch: str, n: int = 3, t: int = 6, seed: int = 0) -> dict:
    """Model inputs for ``arch`` (with labels where the head computes a loss).

    input_ids / attention_mask are (n, t) — (n, 4 + t) for llava, whose 4 image tokens lead —
    with the last row right-padded by 2; pixel_values (n, 3, 16, 16).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB - 1, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.long)
    mask[-1, -2:] = 0  # one right-padded row
    pixels = torch.randn(n, 3, 16, 16, generator=g)
    if arch == "blip":
        ids[:, 0] = 1
        return {
            "pixel_values": pixels,
            "input_ids": ids,
            "attention_mask": mask,
            "labels": ids.masked_fill(mask == 0, -100),
        }
    if arch == "blip_vqa":
        ans = torch.randint(3, VOCAB - 1, (n, 3), generator=g)
        ans[:, 0] = 1
        return {"pixel_values": pixels, "input_ids": ids, "attention_mask": mask, "labels": ans}
    if arch == "llava":
        ids = torch.cat([torch.full((n, 4), IMAGE_TOKEN), ids], 1)
        mask = torch.cat([torch.ones(n, 4, dtype=torch.long), mask], 1)
        return {
            "pixel_values": pixels,
            "input_ids": ids,
            "attention_mask": mask,
            "labels": ids.masked_fill((mask == 0) | (ids == IMAGE_TOKEN), -100),
        }
    if arch == "gpt2":
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": ids.masked_fill(mask == 0, -100),
        }
    if arch == "bert":
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.randint(0, 5, (n,), generator=g),
        }
    raise KeyError(f"tiny_inputs: unknown arch {arch!r}; use one of {ARCHS}")
