"""`repspace compare --plan`: what a comparison will hold in memory, from the configs alone.

Nothing is loaded: every model is built from its ``config.json`` on the ``meta`` device
(shapes, no storage: exact parameter counts in a fraction of a second, even for 70B, after
the seconds of importing torch and transformers), a PEFT adapter's parameters are counted
from its ``adapter_config.json`` on that model (:mod:`repspace.compare.plan_adapters`: LoRA
adds r·(in + out) per target module), and the captured layers are resolved with the
selection compare uses (:func:`repspace.capture.task_heads.shared_layers`).  Llama-family
decoders (and LoRA adapters on them) with ``--layers blocks`` skip the build: the same plan
from config.json arithmetic, without torch (:mod:`repspace.compare.plan_fast`).  Per layer
pair the route rule of :mod:`repspace.statistics.routes` decides rows or moments
(:func:`repspace.compare.plan_core.build_plan`).  The estimate:

- **weights**: parameters × bytes of the dtype each model loads in (``--dtype auto``: its
  config's; 4-bit / 8-bit linear layers under ``--load-in-4bit`` / ``-8bit``), for every
  model held at once (one for a PEFT adapter on its own base, read with it disabled);
- **statistics**: per layer pair and tuned checkpoint held at once, n·(p + q)·itemsize
  (rows) or (p² + q² + pq)·8 (moments);
- **capture buffer**: the rows buffered before an update (≤ 2048) and the row sample
  (``--sample-rows``), float32, per tuned checkpoint held at once;
- **activations**: one batch — the hooks' states of the captured layers per model in the
  pass, and the forward's own working set (≈ b·t·(4h + 2i) plus b·heads·t² values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from repspace.compare.plan_core import LayerPlan, ModelPlan, Plan, available_memory, build_plan

if TYPE_CHECKING:
    from repspace.compare.settings import CompareConfig

# Nothing here imports torch at the top: the meta-device path imports it inside plan_compare,
# and the config-only plan (plan_fast) needs none.
__all__ = ["Plan", "ModelPlan", "LayerPlan", "plan_compare", "available_memory", "build_plan"]


# -- layer widths ------------------------------------------------------------------------------


def layer_width(module, is_input: bool = False) -> int | None:
    """The feature width of a module's output (``is_input``: its input), read from its
    parameters: a linear map's out (in) features, an embedding's dimension, a norm's
    width; for a block, its last 1-D parameter (the closing norm or projection bias),
    which is the hidden width a block keeps.  None when it holds no such parameter."""
    from torch import nn

    from repspace.capture.model_view import core_module

    module = core_module(module)
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Linear):
        return module.in_features if is_input else module.out_features
    if type(module).__name__ == "Conv1D" and weight is not None:  # GPT-2: weight (in, out)
        return weight.shape[0] if is_input else weight.shape[1]
    if isinstance(module, nn.Embedding):
        return module.embedding_dim
    last = None
    for p in module.parameters():
        if p.dim() == 1:
            last = p.numel()
    return last


def _hidden(config, vision: bool) -> int | None:
    sub = getattr(config, "vision_config" if vision else "text_config", None) or config
    get = getattr(sub, "get_text_config", None)
    sub = get() if callable(get) and not vision else sub
    return getattr(sub, "hidden_size", None) or getattr(sub, "d_model", None)


def _vision_test(model):
    """``name -> bool``: :func:`repspace.capture.presets.is_vision_layer` on ``model``, its
    model-wide part (a walk of every module) computed once rather than per layer."""
    from repspace.capture.presets import _has_vision_words, is_vision_layer

    default = is_vision_layer(model, "")  # a name without vision words: the model's rule
    return lambda name: _has_vision_words(name) or default


def _widths(model, names: list[str], config) -> dict[str, int]:
    from repspace.capture.model_view import model_view
    from repspace.layer_table import split_input_suffix

    modules = model_view(model).modules
    vision_of = _vision_test(model)
    out = {}
    for name in names:
        base, is_input = split_input_suffix(name)
        width = layer_width(modules[base], is_input) if base in modules else None
        out[name] = width or _hidden(config, vision_of(name)) or 0
    return out


def _image_tokens(config) -> int:
    vis = getattr(config, "vision_config", None)
    vis = vis if vis is not None else config
    size, patch = getattr(vis, "image_size", None), getattr(vis, "patch_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    if isinstance(patch, (list, tuple)):
        patch = patch[0]
    if isinstance(size, int) and isinstance(patch, int) and patch > 0:
        return (size // patch) ** 2 + 1
    return 0


# -- the plan ----------------------------------------------------------------------------------


def plan_compare(
    base: str,
    tuned: Sequence[str] = (),
    settings: CompareConfig | None = None,
    *,
    available_bytes: int | None = None,
    calibrate: bool = False,
    fast: bool = True,
    **options,
) -> Plan:
    """The memory plan of ``compare(base, tuned, settings)``, from the configs alone.

    ``tuned`` empty: ``base`` is an adapter (or repspace run) compared with the base it
    records, as ``repspace compare ADAPTER``.  ``settings`` / keyword ``options`` are
    :func:`~repspace.compare.api.compare`'s (``num_samples``, ``layers``, ``dtype``,
    ``pooling``, ``batch_size``, …).  ``available_bytes``: the free memory to check against
    (default: measured, :func:`available_memory`).  ``calibrate``: when it fits, also load
    the models and time one batch of the real comparison to estimate its time
    (:mod:`repspace.compare.plan_calibrate`; the only option that reads weights).
    ``fast``: first try the plan from config.json arithmetic alone
    (:mod:`repspace.compare.plan_fast`: Llama-family decoders, LoRA adapters; the same plan,
    without building the models); False always builds them on the meta device.
    """
    from repspace.checkpoints.loader import recorded_base
    from repspace.compare.settings import CompareConfig

    s = settings or CompareConfig()
    if not isinstance(s, CompareConfig):
        raise TypeError(f"plan_compare: settings must be a CompareConfig; got {type(s).__name__}")
    CompareConfig.from_options(**options)  # unknown names: one-line error
    s = replace(s, **options)
    tuned = list(tuned)
    if not tuned:
        recorded = s.base_override or recorded_base(str(base))
        if not recorded:
            raise ValueError(
                f"{base}: give BASE TUNED; a single checkpoint must be a PEFT "
                "adapter or repspace run that records its base model"
            )
        base, tuned = recorded, [base]
    plan = None
    if fast:
        from repspace.compare.plan_fast import fast_plan

        plan = fast_plan(str(base), [str(t) for t in tuned], s, available_bytes=available_bytes)
    if plan is None:
        plan = _meta_plan(str(base), [str(t) for t in tuned], s, available_bytes)
    if calibrate and plan.fits:
        from repspace.compare.plan_calibrate import calibrate as timed

        plan.calibration = timed(str(base), [str(t) for t in tuned], s, plan.num_samples)
    return plan


def _meta_plan(base: str, tuned: list[str], s, available_bytes: int | None) -> Plan:
    """The plan with every model built on the meta device (any architecture)."""
    from repspace.capture.task_heads import shared_layers
    from repspace.compare.plan_models import plan_models

    quant = "4bit" if s.load_in_4bit else "8bit" if s.load_in_8bit else None
    m = plan_models(base, tuned, s, quant)
    n = s.num_samples
    if n is None:
        from repspace.probe import load_probe

        n = len(load_probe(s.probe, num_samples=None, seed=s.seed))
    try:
        base_model, tuned_models, names = shared_layers(
            m.base_model, m.tuned_models, s.layers, warn=False
        )
    except ValueError as exc:
        raise ValueError(f"--layers: {exc}") from None
    vision_of = _vision_test(base_model)
    return build_plan(
        m.models,
        names,
        _widths(base_model, names, m.base_config),
        [_widths(t, names, c) for t, c in zip(tuned_models, m.tuned_configs)],
        vision=[vision_of(name) for name in names],
        image=_image_tokens(m.base_config),
        text_sees_images=m.text_sees_images,
        capture_itemsize=m.capture_itemsize,
        compute_itemsize=m.compute_itemsize,
        working_width=m.working_width,
        heads=m.heads,
        base_capture=m.base_capture,
        notes=m.notes,
        num_samples=n,
        settings=s,
        tuned_count=len(tuned),
        available_bytes=available_bytes,
    )
