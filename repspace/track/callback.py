"""``DistortionCallback``: the tracker as a ``transformers.TrainerCallback``.

>>> cb = DistortionCallback(probe="probe.txt", every_n_steps=50)
>>> trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb])
>>> trainer.train()        # repspace/<metric>/<layer> in the logs; output_dir/repspace-track/

Works with every trainer built on ``transformers.Trainer`` (TRL's ``SFTTrainer``,
``DPOTrainer``, …).  What happens when:

- **construction**: every argument is checked (one-line ``ValueError`` naming it) and the
  probe is loaded, so a bad one fails before the trainer is even built;
- **on_init_end** (end of ``Trainer.__init__``): the layer selection is resolved on the
  model and the output folder checked — a pattern that matches nothing fails here;
- **on_train_begin**: the base's features on the probe are captured, once (:class:`Tracker`):
  the model as it is now (step 0), or for a PEFT model the model with its adapter disabled,
  or ``base`` (a folder) when given; then step 0 itself is measured (``measure_at_start``);
- **on_step_end**: every ``every_n_steps`` optimizer steps, and at the last step, the current
  model is measured (eval mode, no autograd, RNG states restored: training is bit-identical
  with and without the callback) and the values are logged through ``trainer.log`` — the
  path the loss takes, so ``state.log_history`` holds them and every ``report_to``
  integration (TensorBoard, W&B, MLflow, …) receives them as ``repspace/<metric>/<layer>``
  scalars at that step, with no code of ours for those services;
- **on_train_end**: rank 0 writes ``trajectory.csv``, ``trajectory.json`` and the figures
  into ``output_dir`` (default ``args.output_dir/repspace-track``), atomically.

Logging needs the trainer itself (a callback is not handed it): pass ``trainer=`` (as TRL's
own callbacks take it), call :meth:`DistortionCallback.attach`, or let the callback find the
trainer that calls it (it looks for the ``Trainer`` whose callback list holds it, up the
call stack, once).  Without one, the values still go into ``state.log_history`` and the
trajectory, with a warning that ``report_to`` does not see them.

Under torchrun + DDP every rank measures its shard of the probe and the statistics are
reduced exactly (:class:`Tracker`); every rank logs the same values (the integrations
write on the main process only) and rank 0 writes the folder.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from transformers import TrainerCallback

from repspace.track.options import DEFAULT_METRICS, TrackSettings
from repspace.track.tracker import Tracker

__all__ = ["DistortionCallback", "OUTPUT_SUBDIR"]

OUTPUT_SUBDIR = "repspace-track"


class DistortionCallback(TrainerCallback):
    """Track the distortion of the training model from its base (module docstring).

    ``base``: None (the model at step 0; a PEFT model with its adapter disabled), a
    checkpoint folder, or a module.  ``probe``, ``layers``, ``pooling``, ``metrics``,
    ``every_n_steps``, ``batch_size``, ``max_length``, ``num_samples``, ``processor``,
    ``seed``: as for :class:`~repspace.track.Tracker` (processor default: the base's, then
    the trainer's ``processing_class``).  ``output_dir``: where the trajectory goes (default
    ``args.output_dir/repspace-track``).  ``measure_at_start``: also measure step 0.
    ``figures``: draw the figures at the end.  ``trainer``: the trainer to log through
    (see the module docstring for the alternatives).
    """

    def __init__(
        self,
        base=None,
        probe=None,
        layers="blocks",
        every_n_steps: int = 50,
        metrics=DEFAULT_METRICS,
        output_dir=None,
        *,
        pooling="mean",
        batch_size: int = 32,
        max_length: int = 64,
        num_samples: int | None = None,
        processor=None,
        seed: int = 0,
        measure_at_start: bool = True,
        figures: bool = True,
        trainer=None,
    ):
        if probe is None:
            raise ValueError(
                "probe: give the probe data (a .txt/.jsonl/.csv file, an image "
                "folder, 'general', 'builtin', a ProbeSet or a list of texts)"
            )
        from repspace.track.inputs import probe_set

        s = TrackSettings(
            every_n_steps=every_n_steps,
            batch_size=batch_size,
            max_length=max_length,
            seed=seed,
            num_samples=num_samples,
            metrics=metrics,
            layers=layers,
            pooling=pooling,
        )
        self.every_n_steps = s.every_n_steps
        self.options = dict(
            layers=s.layers,
            pooling=s.pooling,
            metrics=s.metrics,
            every_n_steps=s.every_n_steps,
            batch_size=s.batch_size,
            max_length=s.max_length,
            processor=processor,
            seed=s.seed,
        )
        self.probe = probe_set(probe, num_samples, seed, pooling)  # fails now when empty
        if base is not None and not isinstance(base, (str, Path)) and not hasattr(base, "modules"):
            raise ValueError(
                f"base must be None, a checkpoint folder or a module; got {type(base).__name__}"
            )
        self.base = base
        self.output_dir = None if output_dir is None else Path(output_dir)
        if self.output_dir is not None:
            from repspace.track.folder import check_track_output

            check_track_output(self.output_dir)
        self.measure_at_start = bool(measure_at_start)
        self.figures = bool(figures)
        self.trainer = trainer
        self.tracker: Tracker | None = None
        self._warned = False

    # -- the trainer --------------------------------------------------------------------
    def attach(self, trainer) -> "DistortionCallback":
        """Log through ``trainer`` and add this callback to it (if it is not there yet)."""
        self.trainer = trainer
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        return self

    def _find_trainer(self) -> None:
        """The Trainer whose callback list holds this callback, found up the call stack
        (callbacks are called from the trainer's own methods)."""
        if self.trainer is not None:
            return
        frame = sys._getframe(1)
        while frame is not None:
            if "self" in frame.f_code.co_varnames:
                owner = frame.f_locals.get("self")
                handler = getattr(owner, "callback_handler", None)
                if (
                    handler is not None
                    and callable(getattr(owner, "log", None))
                    and any(cb is self for cb in getattr(handler, "callbacks", ()))
                ):
                    self.trainer = owner
                    return
            frame = frame.f_back

    def _output_dir(self, args) -> Path:
        return self.output_dir or Path(args.output_dir) / OUTPUT_SUBDIR

    # -- events ---------------------------------------------------------------------------
    def on_init_end(self, args, state, control, model=None, **kwargs):
        self._find_trainer()
        if model is not None:
            from repspace.capture.selection import resolve_layers

            from repspace.track.tracker import base_side

            side, _ = base_side(model)
            try:
                resolve_layers(getattr(side, "model", side), self.options["layers"])
            except ValueError as exc:
                raise ValueError(f"layers: {exc}") from None
        if state.is_world_process_zero:
            from repspace.track.folder import check_track_output

            check_track_output(self._output_dir(args))
        return control

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._find_trainer()
        if self.tracker is not None:  # train() again: the same base, the trajectory goes on
            if self.measure_at_start and self.tracker.due(state.global_step):
                self._measure(model, state, control)
            return control
        base = self.base
        if base is None and state.global_step > 0:
            from repspace.track.tracker import _is_peft

            if not _is_peft(model):
                raise ValueError(
                    "base: training resumes at step "
                    f"{state.global_step}, so the model is no longer the base; "
                    "pass base= (the pre-trained model's folder)"
                )
        device = next((p.device for p in model.parameters()), None)
        self.tracker = Tracker(
            model if base is None else base,
            self.probe,
            fallback_processor=processing_class,
            device=device if isinstance(base, (str, Path)) else None,
            **self.options,
        )
        if self.measure_at_start and self.tracker.due(state.global_step):
            self._measure(model, state, control)
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.tracker is not None and (
            self.tracker.due(state.global_step) or state.global_step >= state.max_steps
        ):
            self._measure(model, state, control)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.tracker is not None and self.tracker.is_main:
            self.tracker.finish(self._output_dir(args), figures=self.figures)
        return control

    # -- logging --------------------------------------------------------------------------
    def _measure(self, model, state, control=None) -> None:
        if self.tracker.last_step == state.global_step:
            return
        values = self.tracker.measure(model, state.global_step)
        scalars = Tracker.scalars(values)
        if self.trainer is not None:
            # Trainer.log clears control.should_log (the handler's on_log does): keep the
            # trainer's own decision to log the loss at this step.
            controls = [
                c for c in (control, getattr(self.trainer, "control", None)) if c is not None
            ]
            flags = [c.should_log for c in controls]
            self.trainer.log(scalars)
            for c, flag in zip(controls, flags):
                c.should_log = flag
            return
        if not self._warned:
            self._warned = True
            warnings.warn(
                "DistortionCallback: no trainer to log through (pass trainer= or call "
                "attach(trainer)); values go to state.log_history and the trajectory "
                "only, report_to integrations do not see them",
                stacklevel=3,
            )
        state.log_history.append({**scalars, "step": state.global_step})

    @property
    def trajectory(self):
        """The trajectory so far (None before training starts)."""
        return None if self.tracker is None else self.tracker.trajectory
