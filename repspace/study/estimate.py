"""How long the cells of a study that are not cached will take on this machine.

``repspace study CONFIG --dry-run`` calls :func:`estimate_study` after printing the grid. The
estimate comes from a short calibration on this machine, never from numbers measured elsewhere:

- **training**: the first cell still to run of each method trains for a few steps
  (:data:`CALIBRATION_STEPS`) into a temporary folder (the study folder is not touched);
  the median step time × the cell's steps, plus the run's set-up (loading the base, rendering
  and encoding the data) as measured;
- **evaluation**: one held-out batch of the first cell's task, decoded as the trainer does
  (the first batch twice: with and without the KV cache), times the number of batches;
- **compare**: the base against itself on a two-batch subset of the first probe, split (from the stage
  timings of :mod:`repspace._profile`) into a fixed part (loading, metrics) and a part per
  probe sample, scaled to the study's ``num_samples``, once per probe.

The range printed with the estimate uses the fastest and the slowest of the timed steps; it
does not cover what the calibration never sees (a multi-stage method's later stages, larger
budgets of the same method, other load on the machine).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from repspace.study.grid import base_eval_config

__all__ = ["CALIBRATION_STEPS", "StudyEstimate", "estimate_study", "format_duration"]

CALIBRATION_STEPS = 4


@dataclass
class MethodTiming:
    method: str
    label: str  # the cell that was timed
    setup: float  # seconds from train() to the first step
    steps: list[float]  # seconds per timed step (the first, warm-up, left out)
    stages: int = 1

    @property
    def step(self) -> float:
        return statistics.median(self.steps)


@dataclass
class StudyEstimate:
    """What :func:`estimate_study` found; seconds throughout."""

    to_run: list[str]
    cached: list[str]
    seconds: float = 0.0
    low: float = 0.0
    high: float = 0.0
    per_cell: dict[str, float] = field(default_factory=dict)
    methods: dict[str, MethodTiming] = field(default_factory=dict)
    eval_batch: float = 0.0  # one held-out batch, decoded twice (cache check)
    eval_batches: int = 0  # batches of the held-out split
    compare_fixed: float = 0.0
    compare_per_sample: float = 0.0
    compare_samples_timed: int = 0
    probes: int = 1  # compares per cell (one per probe)
    calibration_seconds: float = 0.0

    def lines(self, num_samples: int) -> list[str]:
        """The estimate and its basis, for the terminal."""
        if not self.to_run:
            return [
                f"nothing to run: all {len(self.cached)} cells are cached (a run only "
                "rewrites the tables and figures)"
            ]
        out = [
            f"estimated wall time for the {len(self.to_run)} cell(s) to run: "
            f"{format_duration(self.seconds)} (range {format_duration(self.low)} – "
            f"{format_duration(self.high)}) on this machine"
        ]
        if self.cached:
            out.append(
                f"  cached, skipped: {len(self.cached)} cell(s) "
                f"({', '.join(self.cached[:6])}{', …' if len(self.cached) > 6 else ''})"
            )
        steps = ", ".join(
            f"{m} {t.step:.3g} s/step" + (f" (stage 1 of {t.stages})" if t.stages > 1 else "")
            for m, t in self.methods.items()
        )
        setup = statistics.median([t.setup for t in self.methods.values()]) if self.methods else 0.0
        if self.methods:
            out.append(
                f"  basis: {len(next(iter(self.methods.values())).steps) + 1} timed steps "
                f"per method ({steps}); set-up {setup:.3g} s per run"
            )
        out.append(
            f"  evaluation: one held-out batch {self.eval_batch:.3g} s (decoded twice), "
            f"{self.eval_batches} batch(es) per cell; compare: "
            f"{self.compare_fixed:.3g} s + {1000 * self.compare_per_sample:.3g} ms per "
            f"probe sample × {num_samples} (timed on {self.compare_samples_timed})"
            + (f", × {self.probes} probes" if self.probes > 1 else "")
        )
        out.append(
            f"  range: the fastest and slowest timed steps; a multi-stage method's later "
            f"stages and other budgets are assumed to cost the same; calibration took "
            f"{self.calibration_seconds:.1f} s"
        )
        return out


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _time_training(cfg, label: str, steps: int, folder: Path) -> MethodTiming:
    from repspace.methods import make_config
    from repspace.training import train

    stamps: list[float] = []
    run = dataclasses.replace(cfg, output_dir=str(folder / label))
    start = time.perf_counter()
    train(
        run,
        progress=False,
        max_steps_this_call=min(steps, cfg.steps),
        callback=lambda step, loss: stamps.append(time.perf_counter()),
    )
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    if not gaps:  # a one-step cell: its only step, set-up included
        gaps = [stamps[0] - start] if stamps else [0.0]
    first = stamps[0] - start if stamps else 0.0
    setup = max(first - statistics.median(gaps), 0.0)
    stages = type(make_config(cfg.method, **cfg.method_options)).num_stages
    return MethodTiming(cfg.method, label, setup, gaps, stages)


def _time_eval_batch(cfg) -> tuple[float, int]:
    """(seconds of one held-out batch, batches in the held-out split) of ``cfg``'s task."""
    import torch

    from repspace.checkpoints import load_checkpoint
    from repspace.training import evaluate_model
    from repspace.training.data import load_records
    from repspace.training.tasks import Task, make_task

    base = load_checkpoint(cfg.base)
    task = make_task(base.model, base.processor, cfg.task)
    if type(task).fit is not Task.fit:
        task.fit(load_records(cfg, "train"))
    model = task.prepare_model(base.model).eval()
    records = load_records(cfg, "test")
    size = cfg.eval_batch_size or cfg.batch_size
    batch = records[:size]
    device = torch.device(
        "cuda"
        if cfg.device == "auto" and torch.cuda.is_available()
        else ("cpu" if cfg.device == "auto" else cfg.device)
    )
    model.to(device)
    enc = task.encode(batch, False)
    start = time.perf_counter()
    evaluate_model(task, model, enc, batch, cfg, device, label="the untuned base")
    return time.perf_counter() - start, max(1, math.ceil(len(records) / size))


def _time_compare(config) -> tuple[float, float, int]:
    """(fixed seconds, seconds per probe sample, samples timed) of one cell's compare."""
    from repspace._profile import profiling
    from repspace.study import comparing

    kwargs = comparing.compare_settings(config)
    n = max(4, min(config.compare.num_samples, 2 * config.compare.batch_size))
    kwargs.update(num_samples=n, sample_rows=min(kwargs.get("sample_rows") or n, n))
    with warnings.catch_warnings(), profiling() as prof:
        warnings.simplefilter("ignore")  # base vs itself: identical states are the point
        comparing.default_compare(config.base, [config.base], **kwargs)
    per = sum(prof.seconds[s] for s in ("inputs", "forward", "pooling", "statistics"))
    return max(prof.total - per, 0.0), per / n, n


def estimate_study(config, planned, steps: int = CALIBRATION_STEPS) -> StudyEstimate:
    """Calibrate on this machine and estimate the wall time of the planned cells not cached.

    ``planned``: :func:`repspace.study.runner.plan_study`'s list.  Writes only to a
    temporary folder, removed afterwards."""
    todo = [p for p in planned if not p.done]
    est = StudyEstimate(
        [p.label for p in todo],
        [p.label for p in planned if p.done],
        probes=len(config.compare.probes),
    )
    if not todo:
        return est
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="repspace-calibrate-") as tmp,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        first = todo[0]  # evaluation first: it loads the base, so no run's set-up is cold
        eval_cfg = first.train_config or base_eval_config(config, first.cell)
        est.eval_batch, est.eval_batches = _time_eval_batch(eval_cfg)
        for p in todo:
            cfg = p.train_config
            if cfg is not None and cfg.method not in est.methods:
                est.methods[cfg.method] = _time_training(cfg, p.label, steps + 1, Path(tmp))
        est.compare_fixed, est.compare_per_sample, est.compare_samples_timed = _time_compare(config)
    est.calibration_seconds = time.perf_counter() - start
    # the first batch is decoded twice (with and without the KV cache), the others once
    evaluation = est.eval_batch * (est.eval_batches + 1) / 2
    # one compare per probe (the first is timed)
    compare = len(config.compare.probes) * (
        est.compare_fixed + est.compare_per_sample * config.compare.num_samples
    )
    setup = statistics.median([t.setup for t in est.methods.values()]) if est.methods else 0.0
    for p in todo:
        cfg = p.train_config
        if cfg is None:  # the base cell: evaluation and compare only
            mid = lo = hi = setup + evaluation + compare
        else:
            t = est.methods[cfg.method]
            fixed = setup + evaluation + compare
            mid, lo, hi = (fixed + cfg.steps * s for s in (t.step, min(t.steps), max(t.steps)))
        est.per_cell[p.label] = mid
        est.seconds += mid
        est.low += lo
        est.high += hi
    return est
