"""`repspace compare --plan` from config.json arithmetic alone: no torch, no transformers.

Building a 70B model on the meta device is exact for any architecture but costs seconds of
imports (torch, transformers' config and modelling modules) before the first shape is
known.  For the decoder families whose parameters follow from their config alone (Llama,
Mistral, Qwen2, Qwen3, Gemma and Phi-3 causal LMs, :data:`FAMILIES`), this module writes
down what the meta path would find — each parameter tensor of the transformers class, the
block names the ``blocks`` preset selects, their widths, and the modules a LoRA adapter can
sit on (counted by the same :func:`~repspace.compare.plan_adapters.lora_count`) — and
builds the same :class:`~repspace.compare.plan_core.Plan` with
:func:`~repspace.compare.plan_core.build_plan`.

:func:`fast_plan` returns None ("build them on the meta device") whenever it is not sure:
another family or class, a missing or odd size, a value the config class would reject or
transform, a quantized or multimodal config, a hub id, a weights file or repspace run, other
layers than ``blocks``, an adapter other than LoRA on listed module names (regex targets,
``layers_to_transform``, ``modules_to_save``, DoRA, LoRA biases, any other LoRA variant
switched on), a QLoRA adapter, ``--base-override`` / ``--config``, 4-/8-bit loading, or an
unreadable file (the meta path then raises the one-line error).
tests/compare/test_plan_fast.py checks ``to_dict()`` equality with the meta path.

Not checked here: config fields that do not enter the count (``rms_norm_eps``,
``rope_parameters``, …).  A config transformers would refuse for such a field gets a plan;
the comparison itself then stops at loading with transformers' message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from repspace.compare.plan_core import (
    SHARED_NOTE,
    SHARES_WEIGHTS,
    ModelPlan,
    Plan,
    build_plan,
    load_dtype,
)

__all__ = ["FAMILIES", "fast_plan", "plan_from_args", "recorded_adapter_base"]

_ABSENT = object()


@dataclass(frozen=True)
class Family:
    """What a ``model_type``'s causal-LM class holds, as its transformers source builds it.

    ``defaults``: the config class's value of each optional key config.json may leave out
    (None: derived, ``num_key_value_heads`` = heads, ``head_dim`` = hidden // heads; checked
    against the config classes by the tests).  ``attention_bias`` / ``mlp_bias``: None
    when the config key decides, else fixed; ``o_bias``: whether o_proj follows the q/k/v
    bias; ``qk_norm``: an RMSNorm of head_dim on queries and keys (Qwen3); ``fused``: one
    qkv_proj and one gate_up_proj (Phi-3) instead of three and two maps."""

    architecture: str
    defaults: dict
    attention_bias: bool | None
    mlp_bias: bool | None
    o_bias: bool
    qk_norm: bool = False
    fused: bool = False


FAMILIES = {
    "llama": Family(
        "LlamaForCausalLM",
        {
            "pad_token_id": None,
            "num_key_value_heads": None,
            "head_dim": None,
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
        },
        attention_bias=None,
        mlp_bias=None,
        o_bias=True,
    ),
    "mistral": Family(
        "MistralForCausalLM",
        {
            "pad_token_id": None,
            "num_key_value_heads": 8,
            "head_dim": None,
            "tie_word_embeddings": False,
        },
        attention_bias=False,
        mlp_bias=False,
        o_bias=False,
    ),
    "qwen2": Family(
        "Qwen2ForCausalLM",
        {
            "pad_token_id": None,
            "num_key_value_heads": 32,
            "head_dim": None,
            "tie_word_embeddings": False,
        },
        attention_bias=True,
        mlp_bias=False,
        o_bias=False,
    ),
    "qwen3": Family(
        "Qwen3ForCausalLM",
        {
            "pad_token_id": None,
            "num_key_value_heads": 32,
            "head_dim": 128,
            "tie_word_embeddings": False,
            "attention_bias": False,
        },
        attention_bias=None,
        mlp_bias=False,
        o_bias=True,
        qk_norm=True,
    ),
    "gemma": Family(
        "GemmaForCausalLM",
        {
            "pad_token_id": 0,
            "num_key_value_heads": 16,
            "head_dim": 256,
            "tie_word_embeddings": True,
            "attention_bias": False,
        },
        attention_bias=None,
        mlp_bias=False,
        o_bias=True,
    ),
    "phi3": Family(
        "Phi3ForCausalLM",
        {
            "pad_token_id": 32000,
            "num_key_value_heads": None,
            "head_dim": None,
            "tie_word_embeddings": False,
        },
        attention_bias=False,
        mlp_bias=False,
        o_bias=False,
        fused=True,
    ),
}
_REQUIRED = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
)
# Keys of a config.json that make it something else than the plain decoder counted here.
_OTHER = (
    "quantization_config",
    "auto_map",
    "vision_config",
    "text_config",
    "audio_config",
    "image_size",
    "patch_size",
    "image_token_index",
    "image_token_id",
    "num_experts",
    "num_local_experts",
)
# LoRA settings that change what is stored (or where) beyond r·(in + out) per listed module;
# besides, any other ``use_*`` switch or ``*_config`` section that is set (peft grows LoRA
# variants: DoRA, QALoRA, block-diagonal, KaSA, …), but for these, which only scale or
# initialise the same A and B.
_LORA_REFUSED = (
    "layers_to_transform",
    "modules_to_save",
    "trainable_token_indices",
    "layer_replication",
    "lora_bias",
    "target_parameters",
)
_LORA_HARMLESS = ("use_rslora", "loftq_config", "eva_config", "corda_config", "lora_ga_config")
_FOUR_BIT = re.compile(r"(bnb|nf4|int4|4-?bit)", re.IGNORECASE)  # quantization.qlora_reason's
_MANIFEST = "repspace_checkpoint.json"


class _Unsure(Exception):
    """Not countable here for certain: the meta path decides (and reports any error)."""


def _positive(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Unsure
    return value


def _flag(value) -> bool:
    if not isinstance(value, bool):
        raise _Unsure
    return value


@dataclass(frozen=True)
class _Decoder:
    """One checkpoint's architecture, from its config.json."""

    spec: str
    raw: dict
    family: Family
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    attention_bias: bool
    mlp_bias: bool

    @property
    def architecture(self) -> str:
        return self.family.architecture

    def block_names(self) -> list[str]:
        return [f"model.layers.{i}" for i in range(self.layers)]

    def parameters(self) -> int:
        """Every parameter tensor of the transformers class, each counted once (a tied head
        is the embedding's)."""
        h, i, hd = self.hidden, self.intermediate, self.head_dim
        q, kv = self.heads * hd, self.kv_heads * hd
        attention = h * q + 2 * h * kv + q * h
        if self.attention_bias:
            attention += q + 2 * kv + (h if self.family.o_bias else 0)
        if self.family.qk_norm:
            attention += 2 * hd
        mlp = 3 * h * i + ((2 * i + h) if self.mlp_bias else 0)
        block = attention + mlp + 2 * h  # input and post-attention RMSNorms
        embeddings = self.vocab * h
        return embeddings + self.layers * block + h + (0 if self.tied else embeddings)

    def sites(self) -> list[tuple[str, str, int, int, bool]]:
        """The modules a LoRA adapter can sit on, as :func:`plan_adapters.linear_sites` lists
        them from the model."""
        h, i, hd = self.hidden, self.intermediate, self.head_dim
        q, kv = self.heads * hd, self.kv_heads * hd
        out = [("model.embed_tokens", "embedding", self.vocab, h, False)]
        for name in self.block_names():
            if self.family.fused:
                out += [
                    (f"{name}.self_attn.o_proj", "linear", q, h, False),
                    (f"{name}.self_attn.qkv_proj", "linear", h, q + 2 * kv, False),
                    (f"{name}.mlp.gate_up_proj", "linear", h, 2 * i, False),
                    (f"{name}.mlp.down_proj", "linear", i, h, False),
                ]
                continue
            out += [
                (f"{name}.self_attn.q_proj", "linear", h, q, False),
                (f"{name}.self_attn.k_proj", "linear", h, kv, False),
                (f"{name}.self_attn.v_proj", "linear", h, kv, False),
                (f"{name}.self_attn.o_proj", "linear", q, h, False),
                (f"{name}.mlp.gate_proj", "linear", h, i, False),
                (f"{name}.mlp.up_proj", "linear", h, i, False),
                (f"{name}.mlp.down_proj", "linear", i, h, False),
            ]
        out.append(("lm_head", "linear", h, self.vocab, True))
        return out


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise _Unsure from None
    if not isinstance(obj, dict):
        raise _Unsure
    return obj


def _kind(spec: str) -> str:
    """:func:`repspace.checkpoints.loader.detect_kind` for a local folder (anything else is
    left to the meta path)."""
    path = Path(spec)
    if spec == "embedded" or not path.is_dir():
        raise _Unsure
    for marker, kind in (
        (_MANIFEST, "repspace"),
        ("adapter_config.json", "peft"),
        ("config.json", "hf"),
    ):
        if (path / marker).is_file():
            return kind
    raise _Unsure


def _decoder(spec: str) -> _Decoder:
    from repspace.checkpoints.remote_code import refuse_remote_code

    if _kind(spec) != "hf":
        raise _Unsure
    try:
        refuse_remote_code(spec)  # the meta path's door checks; a refusal is its to report
    except Exception:  # noqa: BLE001 - the meta path raises it again, as the one line
        raise _Unsure from None
    raw = _read_json(Path(spec) / "config.json")
    family = FAMILIES.get(raw.get("model_type"))
    if family is None or raw.get("architectures") != [family.architecture]:
        raise _Unsure
    if any(raw.get(k) is not None for k in _OTHER):
        raise _Unsure
    if any(k not in raw for k in _REQUIRED):
        raise _Unsure

    def get(key):
        value = raw.get(key, family.defaults.get(key, _ABSENT))
        if value is _ABSENT or (key in raw and raw[key] is None):
            raise _Unsure  # a key the class does not know, or an explicit null: not sure
        return value

    hidden, heads = _positive(raw["hidden_size"]), _positive(raw["num_attention_heads"])
    kv = get("num_key_value_heads")
    kv = heads if kv is None else _positive(kv)
    head_dim = get("head_dim") if "head_dim" in raw else family.defaults["head_dim"]
    if head_dim is None:  # derived, as the classes do: hidden // heads
        if hidden % heads:
            raise _Unsure
        head_dim = hidden // heads
    head_dim = _positive(head_dim)
    if heads % kv:
        raise _Unsure
    vocab = _positive(raw["vocab_size"])
    pad = raw.get("pad_token_id", family.defaults["pad_token_id"])
    if pad is not None and (
        isinstance(pad, bool) or not isinstance(pad, int) or not -vocab <= pad < vocab
    ):
        raise _Unsure  # nn.Embedding refuses such a padding_idx; the meta path says so
    bias = (
        family.attention_bias if family.attention_bias is not None else _flag(get("attention_bias"))
    )
    mlp_bias = family.mlp_bias if family.mlp_bias is not None else _flag(get("mlp_bias"))
    return _Decoder(
        spec,
        raw,
        family,
        hidden,
        _positive(raw["intermediate_size"]),
        _positive(raw["num_hidden_layers"]),
        heads,
        kv,
        head_dim,
        vocab,
        _flag(get("tie_word_embeddings")),
        bias,
        mlp_bias,
    )


def _names(value) -> bool:
    """A list of module names (peft matches each as the name or its last parts)."""
    return isinstance(value, list) and all(isinstance(t, str) for t in value)


def _lora(spec: str, base: _Decoder) -> tuple[int, str]:
    """``(parameters, description)`` of the LoRA adapter folder ``spec`` on ``base``."""
    from repspace.checkpoints.remote_code import check_adapter_config
    from repspace.compare.plan_adapters import lora_count, lora_description

    path = Path(spec) / "adapter_config.json"
    cfg = _read_json(path)
    try:
        check_adapter_config(cfg, path)
    except Exception:  # noqa: BLE001 - the meta path raises it again, as the one line
        raise _Unsure from None
    if str(cfg.get("peft_type", "?")).upper() != "LORA":
        raise _Unsure
    if any(cfg.get(k) for k in _LORA_REFUSED) or any(
        v and (k.startswith("use_") or k.endswith("_config")) and k not in _LORA_HARMLESS
        for k, v in cfg.items()
    ):
        raise _Unsure
    named = cfg.get("base_model_name_or_path")
    if isinstance(named, str) and _FOUR_BIT.search(named):
        raise _Unsure  # a QLoRA adapter: the meta path picks its dtype and says so
    target, exclude = cfg.get("target_modules"), cfg.get("exclude_modules")
    if not (target == "all-linear" or (_names(target) and target)):
        raise _Unsure  # a regex (or nothing): the meta path matches it on the built model
    if exclude is not None and not _names(exclude):
        raise _Unsure
    ranks = cfg.get("rank_pattern") or {}
    if not isinstance(ranks, dict) or not all(isinstance(k, str) for k in ranks):
        raise _Unsure
    for r in (cfg.get("r"), *ranks.values()):
        if r is not None:
            _positive(r)
    total, count = lora_count(base.sites(), cfg)
    if count == 0:
        raise _Unsure  # the meta path says which targets match nothing
    return total, lora_description(cfg, count)


def _separate_reason(tuned: list[str], kinds: list[str], s) -> str | None:
    """:func:`repspace.compare.shared_base.plan_reason` (without --base-override / --config,
    refused before) or :func:`repspace.compare.analyses.needs_separate_base`."""
    from repspace.compare.analyses import needs_separate_base
    from repspace.compare.shared_base import adapter_file_reason

    if s.two_models:
        why = "two models requested (--two-models)"
    elif len(tuned) != 1:
        why = f"{len(tuned)} tuned checkpoints (the base is captured once for all of them)"
    elif kinds[0] != "peft":
        why = f"the tuned checkpoint is not a PEFT adapter folder (kind {kinds[0]})"
    else:
        why = adapter_file_reason(Path(tuned[0]))
    return why or needs_separate_base(settings=s)


# What the hooks hand the statistics per dtype (repspace.capture.hooks.hidden_tensor: half
# precision arrives as float32); the tests check it against plan_models.capture_itemsize.
_CAPTURE_ITEMSIZE = {"float32": 4, "bfloat16": 4, "float16": 4, "float64": 8}


def fast_plan(base: str, tuned: list[str], s, *, available_bytes: int | None = None) -> Plan | None:
    """The plan of ``compare(base, tuned, s)`` from config.json arithmetic, or None when the
    meta-device path must decide.  ``s``: a :class:`~repspace.compare.api.CompareConfig`
    (or anything with its field names), already checked."""
    try:
        return _plan(base, list(tuned), s, available_bytes)
    except _Unsure:
        return None


def _plan(base: str, tuned: list[str], s, available_bytes: int | None) -> Plan:
    from repspace.checkpoints.precision import check_dtype, itemsize

    if not tuned or s.base_override is not None or s.config is not None:
        raise _Unsure
    if s.load_in_4bit or s.load_in_8bit or s.num_samples is None:
        raise _Unsure
    if s.layers not in ("blocks", ["blocks"], ("blocks",)):
        raise _Unsure
    requested = check_dtype(s.dtype)
    arch = _decoder(base)
    kinds = [_kind(t) for t in tuned]
    why = _separate_reason(tuned, kinds, s)
    shared = why is None
    base_dtype = load_dtype(requested, arch.raw, None)
    params = arch.parameters()
    models, dtypes, q_widths = [], [base_dtype], []
    for i, (spec, kind) in enumerate(zip(tuned, kinds), 1):
        if kind == "peft":
            added, adapter = _lora(spec, arch)
            dtype, model = load_dtype(requested, arch.raw, None), arch
            note = SHARES_WEIGHTS if shared else ""  # plan_models joins the (no) notes: ""
            weights = 0 if shared else params * itemsize(dtype)
            if shared:
                dtypes[0] = dtype
        elif kind == "hf":
            model = _decoder(spec)
            if model.architecture != arch.architecture or model.layers != arch.layers:
                raise _Unsure  # other layer names: the meta path pairs them
            added, adapter, note = 0, None, None
            dtype = load_dtype(requested, model.raw, None)
            weights = model.parameters() * itemsize(dtype)
        else:
            raise _Unsure
        dtypes.append(dtype)
        q_widths.append(dict.fromkeys(model.block_names(), model.hidden))
        models.append(
            ModelPlan(
                f"tuned{i}",
                spec,
                kind,
                model.architecture,
                model.parameters(),
                dtype,
                weights,
                adapter,
                added,
                note,
            )
        )
    models.insert(
        0,
        ModelPlan(
            "base", base, "hf", arch.architecture, params, dtypes[0], params * itemsize(dtypes[0])
        ),
    )
    names = arch.block_names()
    return build_plan(
        models,
        names,
        dict.fromkeys(names, arch.hidden),
        q_widths,
        vision=[False] * len(names),
        image=0,
        text_sees_images=False,
        capture_itemsize=max(_CAPTURE_ITEMSIZE[d] for d in dtypes),
        compute_itemsize=max(itemsize(d) for d in dtypes),
        working_width=4 * arch.hidden + 2 * arch.intermediate,
        heads=arch.heads,
        base_capture="adapter_disabled" if shared else f"separate ({why})",
        notes=[SHARED_NOTE] if shared else [],
        num_samples=s.num_samples,
        settings=s,
        tuned_count=len(tuned),
        available_bytes=available_bytes,
    )


def recorded_adapter_base(spec: str) -> str | None:
    """The base a PEFT adapter folder records (``base_model_name_or_path``), as
    :func:`repspace.checkpoints.loader.recorded_base` reads it, without importing the loader
    (torch); None for anything else or in doubt (then ask the loader, which also reports
    an unusable record)."""
    from repspace.checkpoints.remote_code import check_adapter_config

    try:
        if _kind(spec) != "peft":
            return None
        path = Path(spec) / "adapter_config.json"
        cfg = _read_json(path)
        check_adapter_config(cfg, path)
    except Exception:  # noqa: BLE001 - _Unsure or a refusal: the loader reports it
        return None
    named = cfg.get("base_model_name_or_path")
    if not isinstance(named, str) or not named:
        return None
    if not Path(named).exists() and named.startswith(("/", ".", "~")):
        return None
    return named


def plan_from_args(args, settings) -> Plan | None:
    """``repspace compare --plan``'s plan from config.json alone; ``settings``: the command's
    :class:`~repspace.compare.settings.CompareConfig` (:func:`repspace.compare.cli.
    settings_from_args`, already checked).  None: build the models on the meta device
    (:func:`repspace.compare.plan.plan_compare`), as for ``--calibrate``."""
    if getattr(args, "calibrate", False) or not args.tuned:
        return None
    return fast_plan(args.base, args.tuned, settings)
