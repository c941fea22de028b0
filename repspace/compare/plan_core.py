"""The pieces of a `repspace compare --plan` that need neither torch nor a model.

The plan's dataclasses (:class:`ModelPlan`, :class:`LayerPlan`, :class:`Plan`), the dtype a
checkpoint loads in, the free memory, and :func:`build_plan`, which turns what the models
are (layer names and widths, parameters, dtypes) into routes and bytes.  Both ways of
finding out what the models are use it: building them on the meta device
(:mod:`repspace.compare.plan`) and reading config.json (:mod:`repspace.compare.plan_fast`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from repspace.compare.plan_text import plan_text, size_text as _size
from repspace.statistics.routes import break_even_rows, keeps_rows, moments_bytes, rows_bytes

__all__ = [
    "BUFFER_ROWS",
    "LayerPlan",
    "ModelPlan",
    "Plan",
    "SHARED_NOTE",
    "SHARES_WEIGHTS",
    "available_memory",
    "build_plan",
    "load_dtype",
]

BUFFER_ROWS = 2048  # AccumulatorSink's default: rows collected before one update
SHARES_WEIGHTS = "shares the base's weights (one model)"
SHARED_NOTE = (
    "one model in memory: the adapter's, the base read with it disabled (two if the "
    "adapter file turns out to hold base tensors)"
)


def load_dtype(requested: str, raw: dict, quant: str | None) -> str:
    """The dtype a checkpoint of config.json ``raw`` loads in under ``--dtype requested``:
    its own for ``auto``; a half dtype (bfloat16 unless it records float16) under 4-/8-bit."""
    from repspace.checkpoints.precision import config_dtype

    if quant is not None:
        own = config_dtype(raw)
        return own if own in ("bfloat16", "float16") else "bfloat16"
    return config_dtype(raw) if requested == "auto" else requested


@dataclass(frozen=True)
class ModelPlan:
    """One checkpoint: its architecture, parameters, dtype and what it adds to memory."""

    role: str  # base, tuned1, tuned2, …
    spec: str
    kind: str  # hf | peft | state_dict | repspace | hub
    architecture: str
    parameters: int  # the model's (for an adapter: its base's)
    dtype: str
    weights_bytes: int  # what loading it adds to memory (0: shares another's)
    adapter: str | None = None
    adapter_parameters: int = 0
    note: str | None = None


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
    held: int  # tuned checkpoints whose statistics are held at once
    base_capture: str
    weights_bytes: int
    statistics_bytes: int
    buffer_bytes: int
    activation_bytes: int
    available_bytes: int | None
    memory_source: str
    notes: list[str] = field(default_factory=list)
    calibration: dict | None = None  # --calibrate: one batch timed (plan_calibrate)

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes + self.statistics_bytes + self.buffer_bytes + self.activation_bytes
        )

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.total_bytes <= self.available_bytes

    def refusal(self) -> str | None:
        """The one-line reason this run cannot fit, with the levers; None when it fits."""
        if self.fits:
            return None
        parts = {
            "weights": self.weights_bytes,
            "statistics": self.statistics_bytes,
            "capture buffer": self.buffer_bytes,
            "activations": self.activation_bytes,
        }
        full = any(m.dtype in ("float32", "float64") for m in self.models)
        levers = {
            "weights": ["--dtype bfloat16 (half the bytes of float32 weights)"] * full
            + ["--device-map auto (weights spread over the GPUs, then the CPU)"],
            "statistics": ["fewer --layers"] + ["--tuned-per-pass 1"] * (self.held > 1),
            "capture buffer": ["fewer --layers", "a smaller --sample-rows"],
            "activations": ["a smaller --batch-size", "a smaller --max-length"],
        }
        order = sorted(parts, key=parts.get, reverse=True)
        ways = dict.fromkeys(w for k in order for w in levers[k])
        return (
            f"--plan: this comparison needs about {_size(self.total_bytes)} "
            f"({', '.join(f'{k} {_size(parts[k])}' for k in order)}) but "
            f"{self.memory_source} has {_size(self.available_bytes)} free; levers: "
            f"{', '.join(ways)}"
        )

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
    if device_map is None and dev != "auto" and not dev.startswith("cuda"):
        return ram, "this machine"  # no GPU to ask: no torch import (the config-only plan)
    import torch

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


def build_plan(
    models: list[ModelPlan],
    names: list[str],
    p_widths: dict[str, int],
    q_widths: list[dict[str, int]],
    *,
    vision: list[bool],
    image: int,
    text_sees_images: bool,
    capture_itemsize: int,
    compute_itemsize: int,
    working_width: int,
    heads: int,
    base_capture: str,
    notes: list[str],
    num_samples: int,
    settings,
    tuned_count: int,
    available_bytes: int | None,
) -> Plan:
    """The plan from what the models are (however that was found out: built on the meta
    device, or read from config.json by :mod:`repspace.compare.plan_fast`): per layer its
    route and bytes, then the statistics, capture buffer, activations and free memory."""
    s, n = settings, num_samples
    quant = "4bit" if s.load_in_4bit else "8bit" if s.load_in_8bit else None
    held = min(tuned_count, s.tuned_per_pass or tuned_count)
    layers = []
    for name, is_vision in zip(names, vision):
        tokens = (image or s.max_length) if is_vision else s.max_length
        rows = n * tokens if s.pooling == "tokens" else n
        p = p_widths[name]
        q = max(w[name] for w in q_widths)
        size = capture_itemsize
        layers.append(
            LayerPlan(
                name,
                p,
                q,
                rows,
                size,
                "rows" if keeps_rows(rows, p, q, size) else "moments",
                rows_bytes(rows, p, q, size),
                moments_bytes(p, q),
                break_even_rows(p, q, size),
            )
        )
    statistics = held * sum(layer.bytes for layer in layers)
    widths = sum(layer.p + layer.q for layer in layers)
    most = max((la.n for la in layers), default=0)
    buffer = held * widths * 4 * (min(most, BUFFER_ROWS) + min(most, s.sample_rows))
    t = s.max_length + (image if text_sees_images else 0)
    # one model's hooked states at a time (float32), plus the forward's own working set
    activation = (
        s.batch_size * t * (sum(la.p for la in layers) * 4 + working_width * compute_itemsize)
        + s.batch_size * heads * t * t * compute_itemsize
    )
    if available_bytes is None:
        on_gpu = quant is not None and not str(s.device or "").startswith("cuda")
        free, where = available_memory("cuda" if on_gpu else s.device, s.device_map)
    else:
        free, where = available_bytes, "the given budget"
    notes = list(notes)
    if s.pooling == "tokens":
        notes.append(
            f"--pooling tokens: n = {n} samples × tokens per sample (at most "
            f"{s.max_length} text{f', {image} image' if image else ''} tokens; padding "
            "drops rows), so n may be smaller and a layer keep its rows longer than shown"
        )
    return Plan(
        models=models,
        layers=layers,
        num_samples=n,
        pooling=s.pooling,
        tokens=t,
        batch_size=s.batch_size,
        held=held,
        base_capture=base_capture,
        weights_bytes=sum(x.weights_bytes + x.adapter_parameters * 4 for x in models),
        statistics_bytes=statistics,
        buffer_bytes=buffer,
        activation_bytes=int(activation),
        available_bytes=free,
        memory_source=where,
        notes=notes,
    )
