"""`repspace compare --plan`: what a comparison will hold in memory, from the configs alone.

Nothing is loaded: every model is built from its ``config.json`` on the ``meta`` device
(shapes, no storage: exact parameter counts in a fraction of a second, even for 70B), a
PEFT adapter is applied onto that with peft itself (its ``adapter_config.json``: LoRA adds
r·(in + out) per target module), and the captured layers are resolved with the selection
compare uses (:func:`repspace.capture.backbone.shared_layers`).  Per layer pair the route
rule of :mod:`repspace.statistics.routes` decides rows or moments.  The estimate:

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from repspace.checkpoints.loader import recorded_base
from repspace.compare.api import CompareConfig
from repspace.compare.options import check_settings
from repspace.compare.plan_models import ModelPlan, plan_models
from repspace.compare.plan_text import plan_text, size_text as _size
from repspace.statistics.routes import break_even_rows, keeps_rows, moments_bytes, rows_bytes

__all__ = ["Plan", "ModelPlan", "LayerPlan", "plan_compare", "available_memory"]

BUFFER_ROWS = 2048  # AccumulatorSink's default: rows collected before one update


@dataclass(frozen=True)
class LayerPlan:
    """One captured layer pair: widths, rows, the route the rule picks and its bytes."""

    name: str
    p: int
    q: int
    n: int
    itemsize: int
    route: str
    rows_bytes: int
    moments_bytes: int
    break_even: int

    @property
    def bytes(self) -> int:
        return self.rows_bytes if self.route == "rows" else self.moments_bytes


@dataclass
class Plan:
    """The estimate :func:`plan_compare` returns; ``to_text()`` is ``--plan``'s table."""

    models: list[ModelPlan]
    layers: list[LayerPlan]
    num_samples: int
    pooling: str
    tokens: int
    batch_size: int
    held: int                 # tuned checkpoints whose statistics are held at once
    base_capture: str
    weights_bytes: int
    statistics_bytes: int
    buffer_bytes: int
    activation_bytes: int
    available_bytes: int | None
    memory_source: str
    notes: list[str] = field(default_factory=list)
    calibration: dict | None = None   # --calibrate: one batch timed (plan_calibrate)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.statistics_bytes + self.buffer_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.total_bytes <= self.available_bytes

    def refusal(self) -> str | None:
        """The one-line reason this run cannot fit, with the levers; None when it fits."""
        if self.fits:
            return None
        parts = {"weights": self.weights_bytes, "statistics": self.statistics_bytes,
                 "capture buffer": self.buffer_bytes, "activations": self.activation_bytes}
        full = any(m.dtype in ("float32", "float64") for m in self.models)
        levers = {"weights": ["--dtype bfloat16 (half the bytes of float32 weights)"] * full
                  + ["--device-map auto (weights spread over the GPUs, then the CPU)"],
                  "statistics": ["fewer --layers"] + ["--tuned-per-pass 1"] * (self.held > 1),
                  "capture buffer": ["fewer --layers", "a smaller --sample-rows"],
                  "activations": ["a smaller --batch-size", "a smaller --max-length"]}
        order = sorted(parts, key=parts.get, reverse=True)
        ways = dict.fromkeys(w for k in order for w in levers[k])
        return (f"--plan: this comparison needs about {_size(self.total_bytes)} "
                f"({', '.join(f'{k} {_size(parts[k])}' for k in order)}) but "
                f"{self.memory_source} has {_size(self.available_bytes)} free; levers: "
                f"{', '.join(ways)}")

    def check_fits(self) -> None:
        """Raise ``ValueError`` (one line, exit 2 in the CLI) when it cannot fit."""
        why = self.refusal()
        if why is not None:
            raise ValueError(why)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(total_bytes=self.total_bytes, fits=self.fits)
        for layer, plan in zip(out["layers"], self.layers):
            layer["bytes"] = plan.bytes
        return out

    def to_text(self) -> str:
        return plan_text(self)


def available_memory(device: str | None = None, device_map=None) -> tuple[int | None, str]:
    """``(free bytes, where)``: the GPU's free memory for a CUDA device, RAM plus every GPU's
    free memory under a device map, else the machine's available RAM (None: unknown)."""
    ram = _available_ram()
    dev = str(device or "cpu")
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if device_map is not None or dev.startswith("cuda"):
        if torch.cuda.is_available():
            if device_map is not None:
                gpus = sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
                return (ram or 0) + gpus, "this machine (RAM and GPUs)"
            idx = torch.device(dev).index or 0
            return torch.cuda.mem_get_info(idx)[0], f"the GPU cuda:{idx}"
    return ram, "this machine"


def _available_ram() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing: read the kernel's figure
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# -- layer widths ------------------------------------------------------------------------------

def layer_width(module: nn.Module, is_input: bool = False) -> int | None:
    """The feature width of a module's output (``is_input``: its input), read from its
    parameters: a linear map's out (in) features, an embedding's dimension, a norm's
    width; for a block, its last 1-D parameter (the closing norm or projection bias),
    which is the hidden width a block keeps.  None when it holds no such parameter."""
    from repspace.capture.presets import _core

    module = _core(module)
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


def _vision_test(model: nn.Module):
    """``name -> bool``: :func:`repspace.capture.presets.is_vision_layer` on ``model``, its
    model-wide part (a walk of every module) computed once rather than per layer."""
    from repspace.capture.presets import _has_vision_words, is_vision_layer

    default = is_vision_layer(model, "")  # a name without vision words: the model's rule
    return lambda name: _has_vision_words(name) or default


def _widths(model: nn.Module, names: list[str], config) -> dict[str, int]:
    from repspace.introspection import canonical_modules, split_input_suffix

    modules = canonical_modules(model)
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

def plan_compare(base: str, tuned: Sequence[str] = (), settings: CompareConfig | None = None,
                 *, available_bytes: int | None = None, calibrate: bool = False,
                 **options) -> Plan:
    """The memory plan of ``compare(base, tuned, settings)``, from the configs alone.

    ``tuned`` empty: ``base`` is an adapter (or repspace run) compared with the base it
    records, as ``repspace compare ADAPTER``.  ``settings`` / keyword ``options`` are
    :func:`~repspace.compare.api.compare`'s (``num_samples``, ``layers``, ``dtype``,
    ``pooling``, ``batch_size``, …).  ``available_bytes``: the free memory to check against
    (default: measured, :func:`available_memory`).  ``calibrate``: when it fits, also load
    the models and time one batch of the real comparison to estimate its time
    (:mod:`repspace.compare.plan_calibrate`; the only option that reads weights).
    """
    s = settings or CompareConfig()
    if not isinstance(s, CompareConfig):
        raise TypeError(f"plan_compare: settings must be a CompareConfig; got {type(s).__name__}")
    CompareConfig.from_options(**options)  # unknown names: one-line error
    s = replace(s, **options)
    tuned = list(tuned)
    if not tuned:
        recorded = s.base_override or recorded_base(str(base))
        if not recorded:
            raise ValueError(f"{base}: give BASE TUNED; a single checkpoint must be a PEFT "
                             "adapter or repspace run that records its base model")
        base, tuned = recorded, [base]
    check_settings(num_samples=s.num_samples, batch_size=s.batch_size, max_length=s.max_length,
                   sample_rows=s.sample_rows, metrics=s.metrics, layers=s.layers,
                   dist_timeout=s.dist_timeout, spectrum_layers=s.spectrum_layers, dtype=s.dtype)
    if s.load_in_4bit and s.load_in_8bit:
        raise ValueError("--load-in-4bit and --load-in-8bit: choose one")
    quant = "4bit" if s.load_in_4bit else "8bit" if s.load_in_8bit else None
    m = plan_models(str(base), [str(t) for t in tuned], s, quant)
    n = s.num_samples
    if n is None:
        from repspace.probe import load_probe

        n = len(load_probe(s.probe, num_samples=None, seed=s.seed))
    from repspace.capture.backbone import shared_layers

    try:
        base_model, tuned_models, names = shared_layers(m.base_model, m.tuned_models, s.layers,
                                                        warn=False)
    except ValueError as exc:
        raise ValueError(f"--layers: {exc}") from None
    p_widths = _widths(base_model, names, m.base_config)
    q_widths = [_widths(t, names, c) for t, c in zip(tuned_models, m.tuned_configs)]
    image = _image_tokens(m.base_config)
    held = min(len(tuned), s.tuned_per_pass or len(tuned))
    vision_of = _vision_test(base_model)
    layers = []
    for name in names:
        vision = vision_of(name)
        tokens = (image or s.max_length) if vision else s.max_length
        rows = n * tokens if s.pooling == "tokens" else n
        p = p_widths[name]
        q = max(w[name] for w in q_widths)
        size = m.capture_itemsize
        layers.append(LayerPlan(name, p, q, rows, size,
                                "rows" if keeps_rows(rows, p, q, size) else "moments",
                                rows_bytes(rows, p, q, size), moments_bytes(p, q),
                                break_even_rows(p, q, size)))
    statistics = held * sum(layer.bytes for layer in layers)
    widths = sum(layer.p + layer.q for layer in layers)
    most = max((la.n for la in layers), default=0)
    buffer = held * widths * 4 * (min(most, BUFFER_ROWS) + min(most, s.sample_rows))
    t = s.max_length + (image if m.text_sees_images else 0)
    # one model's hooked states at a time (float32), plus the forward's own working set
    activation = s.batch_size * t * (sum(la.p for la in layers) * 4
                                     + m.working_width * m.compute_itemsize) \
        + s.batch_size * m.heads * t * t * m.compute_itemsize
    if available_bytes is None:
        on_gpu = quant is not None and not str(s.device or "").startswith("cuda")
        free, where = available_memory("cuda" if on_gpu else s.device, s.device_map)
    else:
        free, where = available_bytes, "the given budget"
    notes = list(m.notes)
    if s.pooling == "tokens":
        notes.append(f"--pooling tokens: n = {n} samples × tokens per sample (at most "
                     f"{s.max_length} text{f', {image} image' if image else ''} tokens; padding "
                     "drops rows), so n may be smaller and a layer keep its rows longer than shown")
    plan = Plan(models=m.models, layers=layers, num_samples=n, pooling=s.pooling, tokens=t,
                batch_size=s.batch_size, held=held, base_capture=m.base_capture,
                weights_bytes=sum(x.weights_bytes + x.adapter_parameters * 4 for x in m.models),
                statistics_bytes=statistics, buffer_bytes=buffer,
                activation_bytes=int(activation), available_bytes=free, memory_source=where,
                notes=notes)
    if calibrate and plan.fits:
        from repspace.compare.plan_calibrate import calibrate as timed

        plan.calibration = timed(str(base), [str(t) for t in tuned], s, n)
    return plan
