"""Where each method attaches, per architecture family.

A method never hard-codes module names: it asks the model's :class:`ArchSpec` for the
modules of a *site* in some *towers*.  Sites:

``query_value``   attention query and value projections (LoRA's default targets)
``key_value``     attention key and value projections (IA3 rescales their outputs)
``ffn_in``        first feed-forward projection (IA3 rescales its *input* side: ``ffn_out``)
``ffn_out``       last feed-forward projection (Houlsby adapter after it; IA3 feed-forward)
``attn_out``      attention output projection (Houlsby adapter after it)
``self_attention`` self-attention modules (prefix-tuning adds key/value vectors there)
``embeddings``    the module whose *output* is the token sequence entering the first block,
                  one per modality (AdaLink's sites; prompt tuning prepends to ``text``)

Towers are ``"text"`` (the language model / text encoder / text decoder) and ``"vision"``
(the image encoder); ``embeddings`` is keyed by modality (``"text"``, ``"image"``).

Patterns are regular expressions that must match a whole ``named_modules()`` path of the
*unwrapped* model (see :func:`repspace.layer_table.unwrap_model`).  To add an
architecture, add one :class:`ArchSpec` to ``ARCHITECTURES`` (see ``docs/methods.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from torch import nn

__all__ = [
    "ArchSpec",
    "ARCHITECTURES",
    "architecture_of",
    "find_modules",
    "site_modules",
    "output_width",
]


@dataclass(frozen=True)
class ArchSpec:
    """Attachment sites of one architecture family.

    Attributes:
        name: family name (``"blip"``, ``"llava"``, ``"gpt2"``, ...).
        model_types: ``config.model_type`` values of the family.
        sites: ``site -> tower -> regex`` (``embeddings``: ``modality -> regex``).
        fused_qkv: the attention projects query, key and value with one module
            (GPT-2 ``c_attn``, BLIP vision ``qkv``); LoRA then adapts all three.
        text_input: regex of the module whose input prompt tuning extends, where it is not
            the parent of the text embeddings (BLIP-2 with a T5 language model: its
            ``encoder``; the embedding, ``shared``, is what BLIP-2 itself calls).
    """

    name: str
    model_types: tuple[str, ...]
    sites: dict[str, dict[str, str]] = field(default_factory=dict)
    fused_qkv: tuple[str, ...] = ()
    text_input: str | None = None

    def towers(self) -> tuple[str, ...]:
        return tuple(sorted({t for s, d in self.sites.items() if s != "embeddings" for t in d}))

    def pattern(self, site: str, towers: tuple[str, ...] | list[str]) -> str:
        """One regex matching ``site`` in any of ``towers`` (ValueError if none applies)."""
        table = self.sites.get(site, {})
        missing = [t for t in towers if t not in table]
        if missing or not towers:
            have = ", ".join(sorted(table)) or "none"
            raise ValueError(
                f"{self.name} models have no {site} site in tower(s) "
                f"{', '.join(missing) or '(none given)'}; available: {have}"
            )
        return "|".join(f"(?:{table[t]})" for t in towers)


_BLIP_T = r"(?:text_decoder\.bert|text_encoder)\.encoder\.layer\.\d+\."
_BLIP_V = r"vision_model\.encoder\.layers\.\d+\."
_LLAVA_T = r"(?:model\.language_model|language_model\.model|language_model)\.layers\.\d+\."
_LLAVA_V = r"(?:model\.)?vision_tower\.(?:vision_model\.)?encoder\.layers\.\d+\."
_BERT_T = r"(?:(?:bert|roberta)\.)?encoder\.layer\.\d+\."
_GPT2_T = r"(?:transformer\.)?h\.\d+\."
_LLAMA_T = r"(?:model\.)?layers\.\d+\."
_VIT_V = r"(?:vit\.)?(?:encoder\.layer|layers)\.\d+\."
_PHI3_T = r"(?:model\.)?layers\.\d+\."
# T5 / FLAN-T5 (alone, or as BLIP-2's / InstructBLIP's language model): encoder and decoder
# blocks are both the text tower; layer.0 is self-attention, decoder layer.1 cross-attention.
_T5_T = r"(?:language_model\.)?(?:encoder|decoder)\.block\.\d+\.layer\.\d+\."
_T5_ATTN = _T5_T + r"(?:SelfAttention|EncDecAttention)\."
# BLIP-2 / InstructBLIP: ViT (fused qkv, like BLIP's) -> Q-Former -> OPT / T5 / Llama LM.
_B2_V = r"vision_model\.encoder\.layers\.\d+\."
_B2_OPT = r"language_model\.model\.decoder\.layers\.\d+\."
_B2_LLAMA = r"language_model\.(?:model\.)?layers\.\d+\."
_IDEFICS_T = r"model\.text_model\.layers\.\d+\."
_IDEFICS_V = r"model\.vision_model\.encoder\.layers\.\d+\."
_QWEN2VL_T = r"model\.language_model\.layers\.\d+\."
_QWEN2VL_V = r"model\.visual\.blocks\.\d+\."

ARCHITECTURES: tuple[ArchSpec, ...] = (
    ArchSpec(
        "blip",
        ("blip",),
        {
            "query_value": {
                "text": _BLIP_T + r"attention\.self\.(?:query|value)",
                "vision": _BLIP_V + r"self_attn\.qkv",
            },
            "key_value": {
                "text": _BLIP_T + r"attention\.self\.(?:key|value)",
                "vision": _BLIP_V + r"self_attn\.qkv",
            },
            "ffn_in": {"text": _BLIP_T + r"intermediate\.dense", "vision": _BLIP_V + r"mlp\.fc1"},
            "ffn_out": {"text": _BLIP_T + r"output\.dense", "vision": _BLIP_V + r"mlp\.fc2"},
            "attn_out": {
                "text": _BLIP_T + r"attention\.output\.dense",
                "vision": _BLIP_V + r"self_attn\.projection",
            },
            "self_attention": {
                "text": _BLIP_T + r"attention\.self",
                "vision": _BLIP_V + r"self_attn",
            },
            "embeddings": {
                "text": r"text_decoder\.bert\.embeddings|text_encoder\.embeddings",
                "image": r"vision_model\.embeddings",
            },
        },
        fused_qkv=("vision",),
    ),
    # LLaVA-NeXT and PaliGemma share LLaVA's layout (vision_tower -> multi_modal_projector ->
    # language_model); SigLIP's vision blocks are named like CLIP's.
    ArchSpec(
        "llava",
        ("llava", "llava_next", "paligemma"),
        {
            "query_value": {
                "text": _LLAVA_T + r"self_attn\.(?:q|v)_proj",
                "vision": _LLAVA_V + r"self_attn\.(?:q|v)_proj",
            },
            "key_value": {
                "text": _LLAVA_T + r"self_attn\.(?:k|v)_proj",
                "vision": _LLAVA_V + r"self_attn\.(?:k|v)_proj",
            },
            "ffn_in": {
                "text": _LLAVA_T + r"mlp\.(?:gate|up)_proj",
                "vision": _LLAVA_V + r"mlp\.fc1",
            },
            "ffn_out": {"text": _LLAVA_T + r"mlp\.down_proj", "vision": _LLAVA_V + r"mlp\.fc2"},
            "attn_out": {
                "text": _LLAVA_T + r"self_attn\.o_proj",
                "vision": _LLAVA_V + r"self_attn\.out_proj",
            },
            "self_attention": {"text": _LLAVA_T + r"self_attn", "vision": _LLAVA_V + r"self_attn"},
            "embeddings": {
                "text": r"(?:model\.language_model|language_model\.model|language_model)\.embed_tokens",
                "image": r"(?:model\.)?multi_modal_projector",
            },
        },
    ),
    ArchSpec(
        "gpt2",
        ("gpt2",),
        {
            "query_value": {"text": _GPT2_T + r"attn\.c_attn"},
            "key_value": {"text": _GPT2_T + r"attn\.c_attn"},
            "ffn_in": {"text": _GPT2_T + r"mlp\.c_fc"},
            "ffn_out": {"text": _GPT2_T + r"mlp\.c_proj"},
            "attn_out": {"text": _GPT2_T + r"attn\.c_proj"},
            "self_attention": {"text": _GPT2_T + r"attn"},
            # wte + wpe -> dropout -> first block: the dropout's output is the block input.
            "embeddings": {"text": r"(?:transformer\.)?drop"},
        },
        fused_qkv=("text",),
    ),
    ArchSpec(
        "bert",
        ("bert", "roberta"),
        {
            "query_value": {"text": _BERT_T + r"attention\.self\.(?:query|value)"},
            "key_value": {"text": _BERT_T + r"attention\.self\.(?:key|value)"},
            "ffn_in": {"text": _BERT_T + r"intermediate\.dense"},
            "ffn_out": {"text": _BERT_T + r"output\.dense"},
            "attn_out": {"text": _BERT_T + r"attention\.output\.dense"},
            "self_attention": {"text": _BERT_T + r"attention\.self"},
            "embeddings": {"text": r"(?:(?:bert|roberta)\.)?embeddings"},
        },
    ),
    ArchSpec(
        "llama",
        ("llama", "mistral", "qwen2", "gemma", "gemma2"),
        {
            "query_value": {"text": _LLAMA_T + r"self_attn\.(?:q|v)_proj"},
            "key_value": {"text": _LLAMA_T + r"self_attn\.(?:k|v)_proj"},
            "ffn_in": {"text": _LLAMA_T + r"mlp\.(?:gate|up)_proj"},
            "ffn_out": {"text": _LLAMA_T + r"mlp\.down_proj"},
            "attn_out": {"text": _LLAMA_T + r"self_attn\.o_proj"},
            "self_attention": {"text": _LLAMA_T + r"self_attn"},
            "embeddings": {"text": r"(?:model\.)?embed_tokens"},
        },
    ),
    # transformers >= 5 names ViT blocks ``layers.N`` with ``q_proj``/``mlp.fc1``; earlier
    # versions ``encoder.layer.N`` with ``attention.attention.query``/``intermediate.dense``.
    ArchSpec(
        "vit",
        ("vit",),
        {
            "query_value": {
                "vision": _VIT_V + r"attention\.(?:attention\.(?:query|value)|(?:q|v)_proj)"
            },
            "key_value": {
                "vision": _VIT_V + r"attention\.(?:attention\.(?:key|value)|(?:k|v)_proj)"
            },
            "ffn_in": {"vision": _VIT_V + r"(?:intermediate\.dense|mlp\.fc1)"},
            "ffn_out": {"vision": _VIT_V + r"(?:output\.dense|mlp\.fc2)"},
            "attn_out": {"vision": _VIT_V + r"attention\.(?:output\.dense|o_proj)"},
            "self_attention": {
                "vision": r"(?:vit\.)?(?:encoder\.layer\.\d+\.attention\.attention|layers\.\d+\.attention)"
            },
            "embeddings": {"image": r"(?:vit\.)?embeddings"},
        },
    ),
    # Phi-3 fuses q, k, v into qkv_proj and gate, up into gate_up_proj: LoRA and IA3 adapt the
    # fused map (IA3's vector then rescales the queries too, as on GPT-2).
    ArchSpec(
        "phi3",
        ("phi3",),
        {
            "query_value": {"text": _PHI3_T + r"self_attn\.qkv_proj"},
            "key_value": {"text": _PHI3_T + r"self_attn\.qkv_proj"},
            "ffn_in": {"text": _PHI3_T + r"mlp\.gate_up_proj"},
            "ffn_out": {"text": _PHI3_T + r"mlp\.down_proj"},
            "attn_out": {"text": _PHI3_T + r"self_attn\.o_proj"},
            "self_attention": {"text": _PHI3_T + r"self_attn"},
            "embeddings": {"text": r"(?:model\.)?embed_tokens"},
        },
        fused_qkv=("text",),
    ),
    # T5: LoRA/IA3/adapters on self- and cross-attention (peft's own T5 targets q, v / k, v,
    # wo in both); prefixes on self-attention only.  AdaLink adapts the encoder's input
    # embeddings (the input text; the decoder's are the target's) and prompt tuning prepends
    # to the encoder input.
    ArchSpec(
        "t5",
        ("t5", "mt5", "umt5"),
        {
            "query_value": {"text": _T5_ATTN + r"(?:q|v)"},
            "key_value": {"text": _T5_ATTN + r"(?:k|v)"},
            "ffn_in": {"text": _T5_T + r"DenseReluDense\.(?:wi|wi_0|wi_1)"},
            "ffn_out": {"text": _T5_T + r"DenseReluDense\.wo"},
            "attn_out": {"text": _T5_ATTN + r"o"},
            "self_attention": {"text": _T5_T + r"SelfAttention"},
            "embeddings": {"text": r"encoder\.embed_tokens"},
        },
    ),
    # BLIP-2 and InstructBLIP: the text tower is the language model (OPT, Llama/Vicuna or
    # T5 / FLAN-T5), the vision tower the ViT; the Q-Former between them is tuned only by
    # full fine-tuning.  Image "embeddings" are the projected query outputs entering the LM.
    ArchSpec(
        "blip2",
        ("blip-2", "instructblip"),
        {
            "query_value": {
                "text": rf"(?:{_B2_OPT}|{_B2_LLAMA})self_attn\.(?:q|v)_proj|{_T5_ATTN}(?:q|v)",
                "vision": _B2_V + r"self_attn\.qkv",
            },
            "key_value": {
                "text": rf"(?:{_B2_OPT}|{_B2_LLAMA})self_attn\.(?:k|v)_proj|{_T5_ATTN}(?:k|v)",
                "vision": _B2_V + r"self_attn\.qkv",
            },
            "ffn_in": {
                "text": rf"{_B2_OPT}fc1|{_B2_LLAMA}mlp\.(?:gate|up)_proj|{_T5_T}DenseReluDense\.(?:wi|wi_0|wi_1)",
                "vision": _B2_V + r"mlp\.fc1",
            },
            "ffn_out": {
                "text": rf"{_B2_OPT}fc2|{_B2_LLAMA}mlp\.down_proj|{_T5_T}DenseReluDense\.wo",
                "vision": _B2_V + r"mlp\.fc2",
            },
            "attn_out": {
                "text": rf"{_B2_OPT}self_attn\.out_proj|{_B2_LLAMA}self_attn\.o_proj|{_T5_ATTN}o",
                "vision": _B2_V + r"self_attn\.projection",
            },
            "self_attention": {
                "text": rf"(?:{_B2_OPT}|{_B2_LLAMA})self_attn|{_T5_T}SelfAttention",
                "vision": _B2_V + r"self_attn",
            },
            "embeddings": {
                "text": r"language_model\.(?:model\.decoder\.|model\.)?embed_tokens|language_model\.shared",
                "image": r"language_projection",
            },
        },
        fused_qkv=("vision",),
        text_input=r"language_model\.encoder",
    ),
    # Idefics3 / SmolVLM: vision_model -> connector (pixel shuffle + projection) -> text_model.
    ArchSpec(
        "idefics3",
        ("idefics3", "smolvlm"),
        {
            "query_value": {
                "text": _IDEFICS_T + r"self_attn\.(?:q|v)_proj",
                "vision": _IDEFICS_V + r"self_attn\.(?:q|v)_proj",
            },
            "key_value": {
                "text": _IDEFICS_T + r"self_attn\.(?:k|v)_proj",
                "vision": _IDEFICS_V + r"self_attn\.(?:k|v)_proj",
            },
            "ffn_in": {
                "text": _IDEFICS_T + r"mlp\.(?:gate|up)_proj",
                "vision": _IDEFICS_V + r"mlp\.fc1",
            },
            "ffn_out": {"text": _IDEFICS_T + r"mlp\.down_proj", "vision": _IDEFICS_V + r"mlp\.fc2"},
            "attn_out": {
                "text": _IDEFICS_T + r"self_attn\.o_proj",
                "vision": _IDEFICS_V + r"self_attn\.out_proj",
            },
            "self_attention": {
                "text": _IDEFICS_T + r"self_attn",
                "vision": _IDEFICS_V + r"self_attn",
            },
            "embeddings": {
                "text": r"model\.text_model\.embed_tokens",
                "image": r"model\.connector",
            },
        },
    ),
    # Qwen2-VL: vision blocks with fused qkv; the merger's output is the image tokens.
    ArchSpec(
        "qwen2_vl",
        ("qwen2_vl",),
        {
            "query_value": {
                "text": _QWEN2VL_T + r"self_attn\.(?:q|v)_proj",
                "vision": _QWEN2VL_V + r"attn\.qkv",
            },
            "key_value": {
                "text": _QWEN2VL_T + r"self_attn\.(?:k|v)_proj",
                "vision": _QWEN2VL_V + r"attn\.qkv",
            },
            "ffn_in": {
                "text": _QWEN2VL_T + r"mlp\.(?:gate|up)_proj",
                "vision": _QWEN2VL_V + r"mlp\.fc1",
            },
            "ffn_out": {"text": _QWEN2VL_T + r"mlp\.down_proj", "vision": _QWEN2VL_V + r"mlp\.fc2"},
            "attn_out": {
                "text": _QWEN2VL_T + r"self_attn\.o_proj",
                "vision": _QWEN2VL_V + r"attn\.proj",
            },
            "self_attention": {"text": _QWEN2VL_T + r"self_attn", "vision": _QWEN2VL_V + r"attn"},
            "embeddings": {
                "text": r"model\.language_model\.embed_tokens",
                "image": r"model\.visual\.merger",
            },
        },
        fused_qkv=("vision",),
    ),
)


def architecture_of(model: nn.Module) -> ArchSpec:
    """The :class:`ArchSpec` of ``model`` (unwrapped from PEFT), by ``config.model_type``."""
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    model_type = getattr(getattr(root, "config", None), "model_type", None)
    for spec in ARCHITECTURES:
        if model_type in spec.model_types:
            return spec
    known = ", ".join(t for s in ARCHITECTURES for t in s.model_types)
    raise ValueError(
        f"{type(root).__name__} (model_type {model_type!r}): repspace has no method "
        f"sites for this architecture (known: {known}); add an ArchSpec "
        "(docs/methods.md, 'Adding an architecture')"
    )


def find_modules(
    model: nn.Module, pattern: str, what: str = "modules"
) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the unwrapped model whose full path matches ``pattern``.

    Raises ValueError naming ``what`` when nothing matches: a method that silently
    adapts zero modules would train nothing and report a wrong number.
    """
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    rx = re.compile(pattern)
    out = [(n, m) for n, m in root.named_modules() if n and rx.fullmatch(n)]
    if not out:
        raise ValueError(
            f"{type(root).__name__}: no {what} match {pattern!r}; is this the "
            "architecture family repspace thinks it is?"
        )
    return out


def site_modules(
    model: nn.Module, arch: ArchSpec, sites: Iterable[str], towers: Iterable[str], what: str
) -> list[tuple[str, nn.Module]]:
    """``(real name, module)`` of every module of ``sites`` in ``towers``, in model order,
    each once.  ValueError (one line, naming ``what``) when a tower lacks a site or nothing
    matches.

    Sites are matched against *canonical* layer names
    (:func:`repspace.layer_table.canonical_modules`: ``base_layer`` path components
    dropped, adapter sub-modules skipped), so a site still resolves on a model whose modules
    another method already wrapped (PT-PEFT stage 2 on a model with a prefix injected); the
    returned names are the real ``named_modules()`` paths of the unwrapped model, which is
    what peft and ``setattr`` need.
    """
    from repspace.layer_table import canonical_modules, unwrap_model

    root = unwrap_model(model)
    rx = re.compile("|".join(f"(?:{arch.pattern(s, tuple(towers))})" for s in sites))
    real: dict[int, str] = {id(m): n for n, m in root.named_modules()}  # deduplicated by torch
    out = [(real[id(m)], m) for c, m in canonical_modules(root).items() if rx.fullmatch(c)]
    if not out:
        raise ValueError(
            f"{what}: no module of {type(root).__name__} matches site(s) "
            f"{', '.join(sites)} in tower(s) {', '.join(towers)}; is this really a "
            f"{arch.name} model?"
        )
    return out


_WIDTH_ATTRS = ("normalized_shape", "out_features", "embedding_dim", "out_channels", "nf")


def output_width(module: nn.Module, kinds: tuple[str, ...] = _WIDTH_ATTRS) -> int | None:
    """The width of what ``module`` itself outputs, read from the first of ``kinds`` it has
    (LayerNorm's ``normalized_shape``, Linear's ``out_features``, Embedding's
    ``embedding_dim``, Conv's ``out_channels``, transformers Conv1D's ``nf``); None when it
    has none (a container or a parameter-free module)."""
    for attr in kinds:
        d = getattr(module, attr, None)
        if attr == "normalized_shape" and isinstance(module, nn.LayerNorm) and d:
            return int(d[-1])
        if attr != "normalized_shape" and isinstance(d, int) and not isinstance(d, bool):
            return d
    return None
