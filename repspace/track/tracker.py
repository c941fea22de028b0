"""The framework-free tracker: how far the model has moved from its base, while it trains.

>>> tracker = Tracker(model, "probe.txt", every_n_steps=50)   # the base is captured now
>>> for step, batch in enumerate(loader, 1):
...     loss = model(**batch).loss; loss.backward(); opt.step(); opt.zero_grad()
...     tracker.maybe_measure(model, step)                     # every 50th step
>>> tracker.measure(model, step)                               # and the last one
>>> tracker.finish("out/track")                                # trajectory.csv/json, figures

**The base is captured once**, when the tracker is built: the probe runs through the base
and its pooled features of every chosen layer are kept (n × Σd floats: 256 probe samples
of a 6-block, 384-wide model are 2.4 MB).  The base is, in order:

- ``base_model`` as given — a module (build the tracker *before* training or applying a
  method: its rows are taken now), or a checkpoint spec (a folder, loaded, captured, dropped);
- for a PEFT model: the model with its adapter disabled (``disable_adapter()``, the base's
  own forward, no second copy), or for prompt learning its base model without the prompt.

**Each measurement** (:meth:`Tracker.measure`) runs only the current model on the same probe
batches, in eval mode under ``torch.no_grad()`` (training flags and every RNG state restored
afterwards, :mod:`repspace.track.guard`), pairs its rows with the kept base rows batch by
batch in a fresh :class:`~repspace.statistics.LayerwiseMoments` (float64, the way
`repspace compare` feeds it) and computes the closed-form metrics per layer: linear CKA,
debiased CKA, effective ranks and their ratio, per-sample drift — whatever
``LayerwiseMoments.compute(metrics=...)`` gives.  A probe of a few hundred rows stays on the
rows route (:mod:`repspace.statistics.routes`): nothing of order d³, one forward pass of the
probe per measurement.  The values equal `repspace compare` of a checkpoint saved at that
step with the same probe, layers and pooling.

**Distributed** (a running ``torch.distributed`` group with more than one process, e.g.
torchrun + DDP): each rank captures its contiguous block of whole probe batches, the
statistics are all-reduced exactly (``acc.all_reduce(group)``), rank 0 computes the metrics
and every rank receives them; rank 0 writes.  Same numbers as one process.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import torch
from torch import nn

from repspace.track.guard import untouched
from repspace.track.inputs import probe_batches, probe_set, processor_for
from repspace._constraints import Interval, validate
from repspace.track.options import DEFAULT_METRICS, RATIOS, TrackSettings, computed_metrics, kept
from repspace.track.trajectory import Trajectory

__all__ = ["Tracker", "scalar_name", "SCALAR_PREFIX"]

SCALAR_PREFIX = "repspace"


def scalar_name(metric: str, layer: str) -> str:
    """The logged scalar's name: ``repspace/<metric>/<layer>``."""
    return f"{SCALAR_PREFIX}/{metric}/{layer}"


class _Rows:
    """A capture sink that keeps every batch as captured (pooled rows per side and layer)."""

    def __init__(self):
        self.batches = []

    def start(self, info: dict) -> int:
        return 0

    def update(self, captured) -> None:
        self.batches.append(captured)

    def finish(self) -> None:
        pass


def _is_peft(model: nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _prompt_learning(model: nn.Module) -> bool:
    cfg = model.active_peft_config
    return bool(
        getattr(cfg, "is_prompt_learning", False) or getattr(cfg, "is_adaption_prompt", False)
    )


def base_side(model: nn.Module):
    """``(what capture runs for the base, a description)`` of a module given as the base."""
    from repspace.capture.runner import AdapterDisabled

    if _is_peft(model):
        if _prompt_learning(model):
            return (
                model.get_base_model(),
                "the PEFT model's base model (prompt learning: without the prompt)",
            )
        return AdapterDisabled(model, model), "the PEFT model with its adapter disabled"
    return model, "the model as given"


def _dist_context(distributed):
    if distributed is False:
        return None
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from repspace.distributed import DistContext

        return DistContext.from_env()
    if distributed:
        raise ValueError(
            "distributed=True but no torch.distributed process group with more than "
            "one process is running; launch with torchrun (or leave it None)"
        )
    return None


class Tracker:
    """Distortion of a training model from its base, measured on a probe (module docstring).

    Parameters
    ----------
    base_model : nn.Module or str
        The base: a module (its features are captured now), or a checkpoint spec
        (loaded, captured, released).  A PEFT model's base is itself with the adapter
        disabled (prompt learning: its base model without the prompt).
    probe : ProbeSet, source or list of texts
        What the models are run on: a :class:`~repspace.probe.ProbeSet`, a source
        :func:`~repspace.probe.load_probe` reads (a ``.txt`` / ``.jsonl`` / ``.csv`` file, an
        image folder, ``"general"``, ``"builtin"``) or a list of texts; ``num_samples`` seeded
        samples of it (all when None), at least 4.
    layers, pooling : as for `repspace compare` (``"blocks"``, ``"mean"``).
    metrics : names or prefixes of the closed-form metrics (``LayerwiseMoments.compute``)
        plus ``<rank>_ratio`` (tuned / base); default linear CKA (+ debiased), effective rank
        (base, tuned, ratio), mean cosine similarity and mean relative shift.
    every_n_steps : how often :meth:`maybe_measure` measures (steps divisible by it).
    batch_size, max_length : the probe batches (as compare's ``--batch-size``, ``--max-length``).
    processor : the tokenizer / processor for the probe (default: the base's, as compare).
    seed : of the probe subset.
    precision : of the statistics' GEMMs (``"float64"``, compare's default, or ``"auto"``).
    device : where a base given as a spec is loaded to (default CPU); a module stays put.
    distributed : None (auto: a running process group of > 1 ranks), True (required), False.
    task_id : for task-conditioned adapters (peft multitask prompt tuning), as compare's.
    fallback_processor : used when neither ``processor`` nor the base's folder gives one (the
        callback passes the trainer's ``processing_class``).

    Every argument is checked here, before the base is captured (or loaded) and before any
    training step: the settings by :class:`~repspace.track.options.TrackSettings` (a one-line
    :class:`~repspace._constraints.SettingError` naming the argument), then the probe.
    """

    def __init__(
        self,
        base_model,
        probe,
        *,
        layers="blocks",
        pooling="mean",
        metrics=DEFAULT_METRICS,
        every_n_steps: int = 50,
        batch_size: int = 32,
        max_length: int = 64,
        processor=None,
        seed: int = 0,
        num_samples: int | None = None,
        precision: str = "float64",
        device=None,
        distributed: bool | None = None,
        task_id: int | None = None,
        fallback_processor=None,
    ):
        s = TrackSettings(
            every_n_steps=every_n_steps,
            batch_size=batch_size,
            max_length=max_length,
            seed=seed,
            num_samples=num_samples,
            metrics=metrics,
            layers=layers,
            pooling=pooling,
            precision=precision,
        )
        self.every_n_steps, self.batch_size, self.max_length = (
            s.every_n_steps,
            s.batch_size,
            s.max_length,
        )
        self.seed, self.metrics, self.layers, self.pooling = s.seed, s.metrics, s.layers, s.pooling
        self.precision = s.precision
        self.task_id = task_id
        self.probe = probe_set(probe, num_samples, seed, pooling)
        self._computed = computed_metrics(self.metrics)
        self.ctx = _dist_context(distributed)

        base_spec, loaded_processor = None, None
        if isinstance(base_model, (str, Path)):
            from repspace.checkpoints import load_checkpoint

            try:
                ck = load_checkpoint(str(base_model), dtype="auto")
            except (OSError, ValueError) as exc:
                raise ValueError(f"base_model: {exc}") from None
            module, base_spec, loaded_processor = ck.model, ck.spec, ck.processor
            if device is not None:
                from repspace.devices import resolve_device

                module.to(resolve_device(device))
            described = f"{base_spec} (loaded)"
        elif isinstance(base_model, nn.Module):
            module, described = base_model, None
        else:
            raise ValueError(
                f"base_model must be an nn.Module or a checkpoint spec (a folder); got "
                f"{type(base_model).__name__}"
            )
        side, how = base_side(module)
        self.base_description = described or how
        from repspace.capture.selection import resolve_layers

        try:
            self._base_names = resolve_layers(getattr(side, "model", side), self.layers)
        except ValueError as exc:
            raise ValueError(f"layers: {exc}") from None
        self._base_core_names = self._core_names(getattr(side, "model", side), self._base_names)
        self._sides: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._moved: dict = {}
        self._base_spectra: dict = {}  # (token stream, layer) -> the base's Spectrum
        rows = self.ctx.shard(len(self.probe), self.batch_size) if self.ctx else None
        self.row_offset = rows.start if rows is not None else 0
        with self._step("the probe and the base's capture"):  # distributed: a failure stops all
            self.processor = processor_for(
                module,
                self.probe,
                processor=processor or loaded_processor,
                base_spec=base_spec,
                fallback=fallback_processor,
            )
            self.batches = probe_batches(
                self.probe,
                module,
                self.processor,
                batch_size=self.batch_size,
                max_length=self.max_length,
                rows=rows,
            )
            with untouched(module):
                self._base = self._capture(side, self._base_names, "base")
        self.trajectory = Trajectory(settings=self.settings(), probe=self.probe.describe())
        self.last_step: int | None = None

    # -- bookkeeping ----------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """Whether this process writes (rank 0, or the only process)."""
        return self.ctx is None or self.ctx.is_main

    @property
    def world_size(self) -> int:
        return 1 if self.ctx is None else self.ctx.world_size

    def settings(self) -> dict:
        """What decides the numbers (recorded in trajectory.json)."""
        return {
            "layers": self.layers if isinstance(self.layers, str) else list(map(str, self.layers)),
            "pooling": self.pooling if isinstance(self.pooling, str) else self.pooling.describe(),
            "metrics": list(self.metrics),
            "every_n_steps": self.every_n_steps,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "seed": self.seed,
            "precision": self.precision,
            "base": self.base_description,
            "world_size": self.world_size,
        }

    def due(self, step: int) -> bool:
        """Whether ``step`` is one :meth:`maybe_measure` measures (a multiple of every_n_steps)."""
        return int(step) % self.every_n_steps == 0

    def _step(self, phase: str):
        import contextlib

        return self.ctx.step(f"repspace track: {phase}") if self.ctx else contextlib.nullcontext()

    # -- capture ----------------------------------------------------------------------------
    @staticmethod
    def _core_names(model: nn.Module, names: list[str]) -> list[str] | None:
        """``names`` as the model's backbone calls them (a head model's ``bert.`` stripped)."""
        from repspace.capture.task_heads import backbone_of

        found = backbone_of(model)
        if found is None:
            return list(names)
        prefix = found[0] + "."
        return (
            [n[len(prefix) :] for n in names] if all(n.startswith(prefix) for n in names) else None
        )

    def _capture(self, side, names: list[str], label: str) -> list:
        from repspace.capture.runner import capture_sides

        sink = _Rows()
        capture_sides(
            {label: side},
            iter(self.batches),
            names,
            pooling=self.pooling,
            sink=sink,
            batch_size=self.batch_size,
            device=None,
            progress=False,
            early_stop=True,
            task_id=self.task_id,
        )
        return sink.batches

    def _tuned_side(self, model: nn.Module) -> tuple[nn.Module, list[str]]:
        """What to run of ``model`` and its layer names, paired position by position with the
        base's: the model itself when the layer selection names the same layers, else (like
        compare) its backbone against the base's (a bare encoder vs its classifier)."""
        if model in self._sides:
            return self._sides[model]
        from repspace.capture.task_heads import backbone_of
        from repspace.capture.selection import resolve_layers

        def names_of(m):
            try:
                return resolve_layers(m, self.layers)
            except ValueError:
                return None

        names = names_of(model)
        if names == self._base_names:
            out = (model, names)
        else:
            found = backbone_of(model)
            core = model if found is None else found[1]
            core_names = names_of(core)
            if core_names is None or core_names != self._base_core_names:
                raise ValueError(
                    f"layers {self.layers!r} select {names or core_names} in "
                    f"{type(model).__name__}, but the base was captured at "
                    f"{self._base_names}; measure the model this tracker was built "
                    "for"
                )
            out = (core, core_names)
        self._sides[model] = out
        return out

    def _base_rows(self, batch, layer: str, device) -> torch.Tensor:
        rows = batch.sides["base"][layer]
        if rows.device == device:
            return rows
        key = (id(rows), str(device))
        if key not in self._moved:  # a base loaded on another device than the training model
            self._moved[key] = rows.to(device)
        return self._moved[key]

    def _sink(self, tuned: list):
        from dataclasses import replace

        from repspace.capture.sinks import AccumulatorSink

        if len(tuned) != len(self._base):
            raise ValueError(
                f"the probe gave {len(tuned)} batches but the base's capture had {len(self._base)}"
            )
        sink = AccumulatorSink(precision=self.precision)
        for b, t in zip(self._base, tuned):
            rows = t.sides["tuned"]
            pairs = list(zip(rows, self._base_names))
            base = {
                name: self._base_rows(b, base_name, rows[name].device) for name, base_name in pairs
            }
            index = (
                {
                    "base": {name: b.index["base"][base_name] for name, base_name in pairs},
                    "tuned": t.index["tuned"],
                }
                if t.index
                else {}
            )
            sink.update(replace(t, sides={"base": base, "tuned": rows}, index=index))
        sink.finish()
        return sink

    # -- measuring --------------------------------------------------------------------------
    def measure(self, model: nn.Module, step: int) -> dict[str, dict[str, float]]:
        """Measure ``model`` against the base now: ``{layer: {metric: value}}``, also recorded
        in :attr:`trajectory` at ``step``.  Eval mode and no autograd inside; the model's
        training flags and every RNG state are as before afterwards.  Distributed: a
        collective (every rank calls it at the same step); every rank returns the values."""
        validate({"step": [Interval(int, 0, None)]}, {"step": step}, owner="Tracker.measure")
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module; got {type(model).__name__}")
        from repspace.capture.model_view import views_resolved_once

        # one model view for this measurement (not across steps: training may change the
        # model in place between them)
        with self._step(f"the capture at step {step}"), views_resolved_once():
            module, names = self._tuned_side(model)
            with untouched(model):
                tuned = self._capture(module, names, "tuned")
                sink = self._sink(tuned)
        if self.ctx is not None:
            from repspace.distributed import reduce_sink

            with self.ctx.collective(f"repspace track: the reduction at step {step}"):
                reduce_sink(sink, self.ctx.group, self.ctx.device)
        values = None
        with self._step(f"the metrics at step {step}"):
            if self.is_main:
                values = self._metrics(sink)
        if self.ctx is not None:
            values = self.ctx.broadcast_object(
                values, f"repspace track: the metrics at step {step}"
            )
        self.trajectory.add(step, values)
        self.last_step = step
        return values

    def maybe_measure(self, model: nn.Module, step: int) -> dict[str, dict[str, float]] | None:
        """:meth:`measure` when ``step`` is due (a multiple of ``every_n_steps``) and was not
        the last step measured (a loop with gradient accumulation calls it several times per
        optimizer step), else None."""
        return self.measure(model, step) if self.due(step) and step != self.last_step else None

    def _metrics(self, sink) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for key, acc in sink.accumulators.items() or [("all", sink.acc)]:
            # The base's rows are the same at every step: its spectra are decomposed once
            # (spectra_cache maps a side's accumulator to its spectrum, read and filled).
            cache = {
                acc.base[layer]: self._base_spectra[key, layer]
                for layer in acc.base
                if (key, layer) in self._base_spectra
            }
            values = acc.compute(metrics=list(self._computed), spectra_cache=cache)
            for layer in acc.base:
                if acc.base[layer] in cache:
                    self._base_spectra[key, layer] = cache[acc.base[layer]]
            for (_, layer), row in values.items():
                for ratio, (num, den) in RATIOS.items():
                    if kept(ratio, self.metrics) and num in row and den in row:
                        row[ratio] = row[num] / row[den] if row[den] else float("nan")
                out[layer] = {k: float(v) for k, v in row.items() if kept(k, self.metrics)}
        return out

    @staticmethod
    def scalars(values: dict[str, dict[str, float]]) -> dict[str, float]:
        """``{"repspace/<metric>/<layer>": value}`` for a logger."""
        return {scalar_name(m, layer): v for layer, row in values.items() for m, v in row.items()}

    # -- output -----------------------------------------------------------------------------
    def finish(self, output_dir, *, figures: bool = True) -> Path | None:
        """Write ``trajectory.csv``, ``trajectory.json`` and the figures to ``output_dir``,
        atomically (:mod:`repspace.track.folder`); on rank 0 only (others return None)."""
        if not self.is_main:
            return None
        from repspace.track.folder import write_trajectory

        return write_trajectory(self.trajectory, output_dir, figures=figures)
