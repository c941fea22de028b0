"""Which models a comparison holds, in which dtype, built on the meta device (for --plan).

The same decisions as :func:`repspace.compare.api.compare` and the loader, read from the
configs: one model for a PEFT adapter on its own base (:func:`plan_reason`), each
checkpoint's own dtype under ``--dtype auto``, a QLoRA adapter's base in bfloat16, an
adapter's base loaded again for each adapter when the base is captured separately.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from repspace.checkpoints import CheckpointError, detect_kind, resolve_spec
from repspace.checkpoints.loader import adapter_config, local_config, recorded_base
from repspace.checkpoints.precision import check_dtype, config_dtype, itemsize
from repspace.checkpoints.quantization import qlora_reason, stored_quantization
from repspace.checkpoints.remote_code import model_class_of, refuse_remote_code

# torch-free pieces, shared with the config-only plan (plan_fast)
from repspace.compare.plan_core import SHARED_NOTE, SHARES_WEIGHTS, ModelPlan
from repspace.compare.plan_core import load_dtype as _load_dtype
from repspace.compare.plan_adapters import adapter_parameters
from repspace.compare.plan_text import size_text

__all__ = ["ModelPlan", "PlannedModels", "plan_models"]

_QUANT_BYTES = {"4bit": 0.5 * 1.03, "8bit": 1.0}  # per linear weight value (+ NF4 absmax)


# -- models on the meta device ----------------------------------------------------------------


@dataclass
class _Arch:
    """A checkpoint's architecture, built on the meta device."""

    spec: str
    config: object  # the transformers config
    raw: dict  # its config.json (empty for a hub id)
    model: nn.Module


def _meta_arch(spec: str, what: str) -> _Arch:
    import transformers

    spec = resolve_spec(str(spec))
    refuse_remote_code(spec)
    path = Path(spec)
    local = path.exists()
    source = path if path.is_file() else path / "config.json"
    if local and not source.is_file():
        raise CheckpointError(f"{spec}: no config.json; --plan reads the {what}'s config")
    try:
        cfg = transformers.AutoConfig.from_pretrained(
            spec, local_files_only=local, trust_remote_code=False
        )
    except Exception as exc:  # noqa: BLE001 - malformed configs fail in many exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        where = "" if local else " (a hub id: needs a network or a warm cache)"
        raise CheckpointError(
            f"{spec}: cannot read the {what}'s config{where} ({type(exc).__name__}: {first})"
        ) from None
    cls = model_class_of(cfg, str(source))
    try:
        with torch.device("meta"):
            model = cls(cfg) if cls is not transformers.AutoModel else cls.from_config(cfg)
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(
            f"{spec}: cannot build {cls.__name__} from its config ({type(exc).__name__}: {first})"
        ) from None
    return _Arch(spec, cfg, local_config(spec) or {}, model.eval())


def _weights(model: nn.Module, dtype: str, quant: str | None) -> int:
    """Bytes of ``model``'s parameters in ``dtype`` (linear weights quantized under ``quant``)."""
    size = itemsize(dtype)
    if quant is None:
        return sum(p.numel() for p in model.parameters()) * size
    linear = {
        id(m.weight)
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and not n.endswith("lm_head")
    }
    total, seen = 0.0, set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel() * (_QUANT_BYTES[quant] if id(p) in linear else size)
    return int(total)


def capture_itemsize(dtype: str) -> int:
    """Bytes per value of the rows the statistics receive from a model computing in
    ``dtype``: whatever the hooks hand over (:func:`repspace.capture.hooks.hidden_tensor`
    decides; today half-precision states arrive as float32)."""
    from repspace.capture.hooks import hidden_tensor

    return hidden_tensor(torch.zeros(1, dtype=getattr(torch, dtype)), "").element_size()


@dataclass
class PlannedModels:
    models: list[ModelPlan]
    base_model: nn.Module
    tuned_models: list[nn.Module]
    base_config: object
    tuned_configs: list[object]
    capture_itemsize: int  # of the rows the statistics receive
    compute_itemsize: int  # of the forward's activations (the weights' dtype)
    base_capture: str
    text_sees_images: bool
    working_width: int  # ≈ 4h + 2i values per token in the forward's working set
    heads: int
    notes: list[str] = field(default_factory=list)


def _text_config(config):
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def plan_models(base: str, tuned: list[str], s, quant: str | None) -> PlannedModels:
    """The models of ``compare(base, tuned, s)`` on the meta device, with their memory."""
    from repspace.compare.analyses import needs_separate_base
    from repspace.compare.shared_base import plan_reason

    requested = check_dtype(s.dtype)
    archs: dict[str, _Arch] = {}

    def arch(spec: str, what: str) -> _Arch:
        key = str(Path(resolve_spec(spec)).resolve()) if Path(resolve_spec(spec)).exists() else spec
        if key not in archs:
            archs[key] = _meta_arch(spec, what)
        return archs[key]

    notes: list[str] = []
    base_arch = arch(base, "base")
    why = plan_reason(
        base, tuned, base_override=s.base_override, config=s.config, two_models=s.two_models
    ) or needs_separate_base(settings=s)
    shared = why is None
    stored = stored_quantization(base_arch.raw)
    base_quant = quant or (
        "4bit"
        if stored and stored.get("load_in_4bit")
        else "8bit"
        if stored and stored.get("load_in_8bit")
        else None
    )
    if stored and not quant:
        notes.append(
            f"{base}: stored quantized ({stored.get('quant_method')}); it loads as "
            "stored where bitsandbytes and a CUDA GPU are, and is refused elsewhere"
        )
    base_dtype = _load_dtype(requested, base_arch.raw, base_quant)
    models: list[ModelPlan] = []
    tuned_models, tuned_configs, dtypes = [], [], [base_dtype]
    for i, spec in enumerate(tuned, 1):
        resolved = resolve_spec(spec)
        kind = detect_kind(resolved)
        role, adapter, added, note = f"tuned{i}", None, 0, None
        if kind == "peft":
            onto_spec = s.base_override or base
            onto = arch(onto_spec, "adapter's base")
            acfg = adapter_config(Path(resolved))
            dtype = _load_dtype(requested, onto.raw, quant)
            qlora = qlora_reason(acfg, onto.raw)
            if qlora and not quant and not stored_quantization(onto.raw):
                own = config_dtype(onto.raw)
                dtype = (
                    (own if own in ("bfloat16", "float16") else "bfloat16")
                    if requested == "auto"
                    else requested
                )
                note = f"QLoRA adapter ({qlora}): compared on the unquantized base in {dtype}"
            added, adapter, counted = adapter_parameters(onto.model, acfg, Path(resolved))
            model = onto.model  # an adapter keeps its base's layer names and widths
            note = "; ".join(filter(None, [note, counted]))
            if shared:
                base_dtype, dtypes[0] = dtype, dtype
                weights = 0
                note = "; ".join(filter(None, [note, SHARES_WEIGHTS]))
            else:
                weights = _weights(onto.model, dtype, quant)
            cfg, parameters, architecture = (
                onto.config,
                sum(p.numel() for p in onto.model.parameters()),
                type(onto.model).__name__,
            )
        else:
            if kind in ("hf", "hub"):
                a, copied, q = arch(spec, "tuned checkpoint"), False, quant
            elif kind == "state_dict":
                a = arch(s.config or s.base_override or base, "architecture (--config or base)")
                copied, q = True, None
                note = (
                    f"a bare weights file ({size_text(Path(resolved).stat().st_size)}) is read "
                    "whole while it is applied"
                )
            else:  # a repspace training run: counted as a full copy of its base
                a = arch(s.base_override or recorded_base(resolved) or base, "run's base")
                copied, q = True, quant
                note = "a repspace run: counted as a full copy of its base"
            # a bare state dict or a run is applied to a fresh copy of its architecture
            model, cfg = (copy.deepcopy(a.model) if copied else a.model), a.config
            dtype = _load_dtype(requested, a.raw, q)
            weights = _weights(model, dtype, q)
            parameters, architecture = (
                sum(p.numel() for p in model.parameters()),
                type(model).__name__,
            )
        dtypes.append(dtype)
        tuned_models.append(model)
        tuned_configs.append(cfg)
        models.append(
            ModelPlan(
                role, spec, kind, architecture, parameters, dtype, weights, adapter, added, note
            )
        )
    base_params = sum(p.numel() for p in base_arch.model.parameters())
    models.insert(
        0,
        ModelPlan(
            "base",
            base,
            detect_kind(resolve_spec(base)),
            type(base_arch.model).__name__,
            base_params,
            base_dtype,
            _weights(base_arch.model, base_dtype, base_quant),
        ),
    )
    capture = "adapter_disabled" if shared else f"separate ({why})"
    if shared:
        notes.append(SHARED_NOTE)
    text = _text_config(base_arch.config)
    hidden = getattr(text, "hidden_size", None) or getattr(text, "d_model", 0) or 0
    inter = getattr(text, "intermediate_size", None) or getattr(text, "d_ff", None) or 4 * hidden
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "num_heads", 0) or 0
    sees = any(
        getattr(base_arch.config, k, None) is not None
        for k in ("image_token_index", "image_token_id")
    )
    captured = [capture_itemsize(d) for d in dtypes]
    return PlannedModels(
        models,
        base_arch.model,
        tuned_models,
        base_arch.config,
        tuned_configs,
        max(captured),
        max(itemsize(d) for d in dtypes),
        capture,
        sees,
        4 * hidden + 2 * inter,
        heads,
        notes,
    )
