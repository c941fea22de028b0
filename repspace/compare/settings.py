"""The settings of `repspace compare`: one class for the API, the command line and study files.

:class:`CompareConfig` holds every option of :func:`repspace.compare.compare`; its base
:class:`CompareOptions` is the engine's share (:func:`repspace.compare.compare_models`, which
is handed batches and never loads anything).  A study's ``[compare]`` table is a
:class:`CompareConfig` too, with the study's own defaults declared as overrides
(:class:`repspace.study.config.CompareSettings`).

Every field is checked when the settings are made (:mod:`repspace._constraints`): a bad value
is a one-line :class:`~repspace._constraints.SettingError` naming the field as the caller
spelled it (``num_samples`` in Python, ``--num-samples`` on the command line, ``compare.
num_samples`` in a study file) -- before any model loads.  What needs the machine (is that
GPU there, does bitsandbytes load) is checked by :func:`repspace.compare.compare` before it
loads anything.

This module imports neither torch nor transformers: ``repspace compare --plan`` builds its
settings in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import ClassVar

from repspace._constraints import Check, Interval, Options, SettingError, Types, Validated

__all__ = [
    "CompareOptions",
    "CompareConfig",
    "MAX_SEED",
    "MERGE_DTYPE_NAMES",
    "POOLINGS",
    "EMBEDDINGS",
    "PRECISIONS",
    "WEIGHT_DTYPES",
]

MAX_SEED = 2**32 - 1  # numpy's RandomState (UMAP's random_state) takes no more
POOLINGS = ("mean", "first", "cls", "last", "tokens")
EMBEDDINGS = ("none", "umap", "pca")
PRECISIONS = ("float64", "auto")  # repspace.statistics.moments.PRECISIONS
MERGE_DTYPE_NAMES = ("float32", "float16", "bfloat16")
WEIGHT_DTYPES = "auto, float32, bfloat16, float16 (or float64 in the API)"


def _names(value) -> bool:
    """A non-empty sequence (not a string) of non-empty strings."""
    return (
        not isinstance(value, (str, bytes))
        and isinstance(value, Sequence)
        and len(value) > 0
        and all(isinstance(v, str) and v.strip() for v in value)
    )


def _layers(value) -> bool:
    return (isinstance(value, str) and bool(value.strip())) or _names(value)


def _torch_device(value) -> bool:
    return type(value).__name__ == "device" and type(value).__module__ == "torch"


def _weights_dtype(value) -> bool:
    from repspace.checkpoints.precision import check_dtype

    check_dtype(value)  # ValueError: not accepted (Check turns it into False)
    return True


def _run_by_name() -> list[str]:
    """The registered analyses asked for by name in ``analyses`` (:mod:`repspace.report.
    analysis_registry`): those that run, less the built-ins with a field of their own
    (``adapter_effect=True``)."""
    from repspace.report.analysis_registry import analyses

    return [a.name for a in analyses() if a.run is not None and not a.switches]


def _analysis_names(value) -> bool:
    named = set(_run_by_name())
    return (
        not isinstance(value, (str, bytes))
        and isinstance(value, Sequence)
        and all(isinstance(v, str) and v in named for v in value)
    )


class _AnalysisNames(Check):
    """The ``analyses`` rule; its description lists the names registered when it is read."""

    def __init__(self):
        super().__init__(_analysis_names, "")

    def describe(self) -> str:
        return (
            "names of registered analyses run by name ("
            + (", ".join(_run_by_name()) or "none")
            + "; the built-in ones have fields of their own: adapter_effect, weight_space, "
            "merge_dtypes, match_layers)"
        )


def _merge_names(value) -> list[str]:
    """``"bfloat16,float16"`` or a sequence of names → the distinct names, in order."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(t).strip() for t in items if str(t).strip()]
    if not names or any(n not in MERGE_DTYPE_NAMES for n in names):
        raise ValueError(names)
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class CompareOptions(Validated):
    """How a comparison runs and what it computes: every option of :func:`compare_models`.

    ``layers`` (preset, glob list or names), ``pooling`` (mean | first | last | tokens),
    ``metrics`` (None: the defaults; names, families, ``all``, ``default``), ``batch_size``,
    ``device`` (None: auto), ``seed``, ``precision`` of the streaming GEMMs, ``sample_rows``
    (row sample per layer for the sample-based metrics), ``spectrum_layers`` (None: a few),
    ``embedding`` (none, the default | umap | pca: a 2-D map of the row sample, opt in) at
    ``embedding_layer`` (None: the last), ``progress`` bars, ``tuned_per_pass`` (None: every
    tuned checkpoint in one pass), ``task_id`` for task-conditioned adapters, ``segments``
    (also image / text / virtual-token metrics).
    """

    layers: object = "blocks"
    pooling: str = "mean"
    metrics: Sequence[str] | None = None
    batch_size: int = 32
    device: str | None = None
    seed: int = 0
    precision: str = "float64"
    sample_rows: int = 1000
    spectrum_layers: Sequence[str] | None = None
    embedding: str = "none"
    embedding_layer: str | None = None
    progress: bool = True
    tuned_per_pass: int | None = None
    task_id: int | None = None
    segments: bool = False

    _command: ClassVar = "compare"
    _constraints: ClassVar = {
        "layers": [
            Check(
                _layers,
                "layer names, globs, re:REGEX or a preset (blocks, vision, "
                "text, embeddings; see `repspace layers MODEL`)",
            )
        ],
        "pooling": [Options(*POOLINGS)],
        "metrics": [
            Check(
                _names,
                "a list of metric names, families, 'all' or 'default' "
                "(`repspace metrics` lists them)",
            ),
            None,
        ],
        "batch_size": [Interval(int, 1, None)],
        "device": [Types(str), Check(_torch_device, "a torch.device"), None],
        "seed": [Interval(int, 0, MAX_SEED)],
        "precision": [Options(*PRECISIONS)],
        "sample_rows": [Interval(int, 0, None)],
        "spectrum_layers": [Check(_names, "a list of layer names"), None],
        "embedding": [Options(*EMBEDDINGS)],
        "embedding_layer": [Types(str), None],
        "progress": [Types(bool)],
        "tuned_per_pass": [Interval(int, 1, None), None],
        "task_id": [Interval(int, 0, None), None],
        "segments": [Types(bool)],
    }

    def __post_init__(self):
        super().__post_init__()
        if self.metrics is not None:
            from repspace.metrics.registry import expand

            try:
                asked = expand(list(self.metrics))
            except ValueError as exc:  # the registry's message names the unknown and the known
                unknown, _, known = str(exc).partition("; ")
                unknown = unknown.split(": ", 1)[-1]  # less the registry's own "--metrics: "
                raise SettingError(
                    "metrics",
                    self.metrics,
                    f"metric names, families, 'all' or 'default' ({unknown})",
                    type(self).__name__,
                    hint=known,
                ) from None
            sample = [m for m in asked if _is_sample_metric(m)]
            if self.sample_rows == 0 and sample:
                raise SettingError(
                    "sample_rows",
                    0,
                    "≥ 4 when the metrics include "
                    f"{', '.join(sample)} (they are computed on the row sample)",
                    type(self).__name__,
                )

    @property
    def wanted(self) -> set[str] | None:
        """The requested metric names (``all``, ``default`` and prefixes expanded by the
        registry), or None for the defaults."""
        from repspace.metrics.registry import expand

        return set(expand(list(self.metrics))) if self.metrics else None

    def report_dict(self) -> dict:
        """The settings a report records (what decides its numbers)."""
        wanted = self.wanted
        return {
            "layers": self.layers if isinstance(self.layers, str) else list(self.layers),
            "pooling": self.pooling,
            "metrics": sorted(wanted) if wanted else "default",
            "batch_size": self.batch_size,
            "device": str(self.device or "cpu"),
            "seed": self.seed,
            "precision": self.precision,
            "sample_rows": self.sample_rows,
            "embedding": self.embedding,
        }


def _is_sample_metric(name: str) -> bool:
    from repspace.metrics.registry import REGISTRY

    metric = REGISTRY.get(name)
    return metric is not None and metric.kind == "sample"


@dataclass(frozen=True)
class CompareConfig(CompareOptions):
    """Every option of :func:`repspace.compare.compare`: the engine's
    (:class:`CompareOptions`: layers, pooling, metrics, batch size, device, ...) and what the
    engine is not told about.

    What to probe: ``probe`` (a source: ``builtin``, ``general``, a file, a folder),
    ``num_samples`` (None: all), ``max_length`` (tokens per text).

    What to load, and where: ``base_override`` (apply adapters / bare weights onto this
    model instead of the base), ``config`` (the architecture of bare weights), ``strict``
    (refuse weights that do not fit exactly), ``device_map`` (e.g. ``"auto"``: accelerate's
    big-model dispatch, layers spread over the GPUs, then CPU; the models stay where it put
    them and ``device`` is ignored), ``dtype`` (``"auto"``, the default: each checkpoint's
    own, read from its config, weights memory-mapped; ``"float32"`` upcasts; ``"bfloat16"``,
    ``"float16"``; None is ``"auto"``), ``load_in_4bit`` / ``load_in_8bit`` (through
    bitsandbytes, on CUDA; the models stay on the GPU it put them on), ``two_models`` (load
    the base separately even for one adapter on its own base), ``distributed`` (None: auto
    — a running ``torch.distributed`` group or torchrun's ``WORLD_SIZE > 1``; each rank
    captures a contiguous shard of the probe set, cut on batch boundaries, so the statistics
    equal one process's to float64 rounding and the row sample is the same rows),
    ``dist_timeout`` (seconds a collective waits for a peer).

    The PEFT-aware analyses of :mod:`repspace.compare.analyses`, on the same checkpoints and
    probe batches, in ``result.analyses`` (one process only): ``adapter_effect``,
    ``weight_space``, ``merge_dtypes`` (e.g. ``("bfloat16",)``), ``match_layers``; and
    ``analyses``: the names of other registered analyses to run (None: none)
    (:mod:`repspace.report.analysis_registry`; each one's CLI flag adds its name).

    Field names are the CLI's option names (``--num-samples`` is ``num_samples``).
    """

    probe: str = "builtin"
    num_samples: int | None = 512
    max_length: int = 64
    base_override: str | None = None
    config: str | None = None
    strict: bool = True
    device_map: str | dict | None = None
    dtype: str | None = "auto"
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    two_models: bool = False
    distributed: bool | None = None
    dist_timeout: float | None = None
    adapter_effect: bool = False
    weight_space: bool = False
    merge_dtypes: Sequence[str] | None = None
    match_layers: bool = False
    analyses: Sequence[str] | None = None

    _constraints: ClassVar = {
        **CompareOptions._constraints,
        "probe": [
            Check(
                lambda v: isinstance(v, (str, Path)) and str(v).strip() != "",
                "a probe source (builtin, general, a file or a folder)",
            )
        ],
        "num_samples": [Interval(int, 1, None), None],
        "max_length": [Interval(int, 1, None)],
        "base_override": [Types(str, Path, name="a checkpoint"), None],
        "config": [Types(str, Path, name="a checkpoint or config.json"), None],
        "strict": [Types(bool)],
        "device_map": [
            Types(
                str,
                dict,
                name="a placement strategy (auto, balanced, ...), a "
                "device or a mapping of module → device",
            ),
            None,
        ],
        "dtype": [Check(_weights_dtype, WEIGHT_DTYPES), None],
        "load_in_4bit": [Types(bool)],
        "load_in_8bit": [Types(bool)],
        "two_models": [Types(bool)],
        "distributed": [Types(bool), None],
        "dist_timeout": [Interval(float, 0, None, closed="neither"), None],
        "adapter_effect": [Types(bool)],
        "weight_space": [Types(bool)],
        "merge_dtypes": [
            Check(lambda v: bool(_merge_names(v)), f"dtypes from {', '.join(MERGE_DTYPE_NAMES)}"),
            None,
        ],
        "match_layers": [Types(bool)],
        "analyses": [_AnalysisNames(), None],
    }

    def __post_init__(self):
        super().__post_init__()
        if self.analyses is not None:  # one spelling downstream: distinct names, in order
            object.__setattr__(self, "analyses", tuple(dict.fromkeys(self.analyses)))
        if self.merge_dtypes is not None:  # one spelling downstream: a list of names
            object.__setattr__(self, "merge_dtypes", _merge_names(self.merge_dtypes))
        from repspace.checkpoints.quantization import quantization_mode  # torch-free

        try:  # the flags' one rule, in the caller's vocabulary
            quantization_mode(self.load_in_4bit, self.load_in_8bit)
        except ValueError:
            raise SettingError(
                "load_in_8bit",
                True,
                "False when load_in_4bit is True (choose one)",
                type(self).__name__,
            ) from None

    def engine_options(self, **changes) -> CompareOptions:
        """The engine's share of these settings (:func:`compare_models`), with ``changes``."""
        return replace(
            CompareOptions(**{f.name: getattr(self, f.name) for f in fields(CompareOptions)}),
            **changes,
        )

    @property
    def analyses_wanted(self) -> bool:
        """Any analysis that runs after the comparison (in one process) is asked for."""
        return bool(
            self.adapter_effect
            or self.weight_space
            or self.merge_dtypes
            or self.match_layers
            or self.analyses
        )
