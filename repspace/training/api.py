"""`train(cfg) -> TrainResult`: one fine-tuning run from a :class:`TrainConfig` to a run folder.

Order of work (cheap checks first, so bad input fails in seconds): output folder vs config
hash -> method config -> base checkpoint -> task glue (architecture x task) -> data records
-> method injection (seeded) -> tensors pre-materialised once -> loop -> held-out evaluation
-> run folder (see :mod:`repspace.training.runs`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from repspace.checkpoints.loader import MANIFEST_NAME, resolve_spec
from repspace.devices import resolve_device
from repspace.methods.base import ParamCount, get_method
from repspace.training.config import TrainConfig
from repspace.training.state import atomic_write_text, latest_state

__all__ = ["train", "TrainResult", "evaluate_model", "evaluate_base"]

_RUN_MARKERS = (MANIFEST_NAME, "train_config.json", "state", "train_log.jsonl")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``finished`` is False when the call stopped early (``max_steps_this_call``); the run
    then resumes on the next call with the same config.  ``timings`` in seconds.
    """

    run_dir: Path
    config: TrainConfig
    params: ParamCount
    scores: dict = field(default_factory=dict)
    manifest: dict | None = None
    finished: bool = False
    step: int = 0
    losses: list = field(default_factory=list)
    resumed_from: int | None = None
    timings: dict = field(default_factory=dict)
    model: torch.nn.Module | None = field(default=None, repr=False)  # the trained model (this call)
    # multi-stage methods: stage -> (trainable parameters in it, of which the stage before trained)
    stages: dict = field(default_factory=dict)


def run_inputs(cfg: TrainConfig) -> list[tuple[str, str | Path]]:
    """``(what, path)`` of everything a run of ``cfg`` reads: the base checkpoint and the
    data spec with every file it names (the run folder may not be, contain or lie inside
    any of them)."""
    from repspace.training.data import data_inputs

    return [("base checkpoint", resolve_spec(cfg.base)), *data_inputs(cfg.data)]


def _output_status(cfg: TrainConfig, config_hash: str) -> str:
    """``"fresh"``, ``"overwrite"``, ``"resume"`` or ``"done"`` for ``cfg.output_dir``; writes nothing.

    The location is checked the way every command checks its output
    (:func:`repspace.outputs.check_location`): not the current folder or a parent, not a link
    or under a file, and neither any input of the run (base, data spec, data files) nor
    inside or around one — so ``--overwrite`` can never delete the data the run reads."""
    from repspace.outputs import check_location

    run_dir = Path(cfg.output_dir)
    check_location(run_dir, inputs=run_inputs(cfg), option="-o")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "fresh"
    if not any((run_dir / m).exists() for m in _RUN_MARKERS):
        raise ValueError(
            f"output_dir {run_dir} is not empty and holds no repspace run; choose an empty or new folder"
        )
    if cfg.overwrite:
        return "overwrite"
    old_hash = None
    try:
        old = json.loads((run_dir / "train_config.json").read_text())
        old_hash = old.get("config_hash") if isinstance(old, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        pass
    if old_hash != config_hash:
        raise ValueError(
            f"output_dir {run_dir} holds a different run (config hash {str(old_hash)[:12]} vs "
            f"{config_hash[:12]}); pass overwrite=True (--overwrite) or choose another --output"
        )
    if (run_dir / MANIFEST_NAME).is_file():
        return "done"
    return "resume" if latest_state(run_dir) is not None else "fresh"


def _make_output(run_dir: Path, status: str) -> None:
    """Create the folder (emptying it for ``"overwrite"``: only ever a repspace run folder)."""
    if status == "overwrite":
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def evaluate_model(
    task, model, enc, records, cfg: TrainConfig, device: torch.device, label: str | None = None
) -> dict[str, float]:
    """Greedy predictions on ``records`` scored by :func:`repspace.training.tasks.score`.

    Raises :class:`~repspace.methods.generation.CachedGenerationMismatch` when cached and
    uncached decoding of the first batch disagree (``label``, default ``cfg.method``, names
    the model in that error)."""
    from repspace.methods import generation_kwargs
    from repspace.methods.generation import cache_checked
    from repspace.training.tasks import score

    was_training = model.training
    model.eval()
    max_new = cfg.max_new_tokens or (32 if cfg.task == "captioning" else 8)
    # the first generated batch is decoded with and without the KV cache: a method whose hooks
    # miss the cache (as on a new transformers release) fails here instead of scoring wrongly
    with torch.no_grad(), cache_checked(model, label or cfg.method):
        preds = task.predict(
            model, enc, cfg.eval_batch_size or cfg.batch_size, max_new, generation_kwargs(model)
        )
    model.train(was_training)
    return score(cfg.task, preds, records)


class BaseScores(dict):
    """:func:`evaluate_base`'s task scores (a plain ``{name: score}`` dict) with the number of
    held-out items they average, ``n_eval_items`` (a run's manifest records the same)."""

    n_eval_items: int | None = None


def evaluate_base(cfg: TrainConfig) -> BaseScores:
    """Task scores of the untrained ``cfg.base`` on ``cfg``'s held-out split: the records,
    greedy decoding and scorer a run of ``cfg`` is evaluated with, no method applied."""
    from repspace.checkpoints import load_checkpoint
    from repspace.training.data import load_records
    from repspace.training.tasks import Task, make_task

    base = load_checkpoint(cfg.base)
    task = make_task(base.model, base.processor, cfg.task)
    if type(task).fit is not Task.fit:  # only tasks that learn state (answer sets) need the data
        task.fit(load_records(cfg, "train"))
    model = task.prepare_model(base.model).eval()
    records = load_records(cfg, "test")
    device = resolve_device(cfg.device, "TrainConfig.device")
    model.to(device)
    enc = task.encode(records, False)
    scores = BaseScores(
        evaluate_model(task, model, enc, records, cfg, device, label="the untuned base")
    )
    scores.n_eval_items = enc.n
    return scores


def train(
    cfg: TrainConfig,
    progress: bool = True,
    callback: Callable | None = None,
    max_steps_this_call: int | None = None,
    on_start: Callable[[ParamCount], None] | None = None,
    track_every: int | None = None,
    track_probe: str = "builtin",
    track_samples: int = 128,
    track_figures: bool = True,
) -> TrainResult:
    """Fine-tune ``cfg.base`` with ``cfg.method`` on ``cfg.task`` and write the run folder.

    Resumes when ``cfg.output_dir`` holds an unfinished run of the same config hash; returns
    the stored result (no training) when it holds the finished one.  ``callback(step, loss)``
    runs after every step (raising ``KeyboardInterrupt`` there stops the run after saving its
    state); ``max_steps_this_call`` stops after that many steps (state saved, ``finished=False``);
    ``on_start(ParamCount)`` is called once the method is applied, before the first step.

    ``track_every=N``: measure the distortion from the base every N steps (and at step 0)
    with :class:`repspace.track.Tracker` on ``track_samples`` samples of ``track_probe`` (as
    ``repspace compare --probe``), and write ``track/`` (trajectory.csv / .json, figures)
    into the run folder.  Tracking is not part of the config: it does not change a single
    weight or loss (the tracker restores every RNG state), and a resumed run continues the
    trajectory.  ``track_figures=False`` writes the trajectory without its figures (a study
    draws its own over seeds; the figures cost seconds per run).
    """
    from repspace.checkpoints import checkpoint_sha256, load_checkpoint, resolve_spec
    from repspace.methods import apply_method, count_parameters, make_config
    from repspace.training.data import check_data, load_records
    from repspace.training.runs import write_run
    from repspace.training.tasks import make_task
    from repspace.training.trainer import Loop, seed_everything

    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"train() needs a TrainConfig, got {type(cfg).__name__}")
    check_call(
        max_steps_this_call=max_steps_this_call,
        track_every=track_every,
        track_samples=track_samples,
        track_probe=track_probe,
        seed=cfg.seed,
    )
    config_hash = cfg.config_hash()  # resolves the method (unknown method: one-line error)
    mcfg = make_config(cfg.method, **cfg.method_options)
    device = resolve_device(cfg.device, "TrainConfig.device")
    status = _output_status(cfg, config_hash)
    if status != "done":
        check_data(cfg)  # degenerate data (one class, an empty split): refused before loading
    run_dir = Path(cfg.output_dir)
    if status == "done":
        manifest = json.loads((run_dir / MANIFEST_NAME).read_text())
        return TrainResult(
            run_dir,
            cfg,
            ParamCount(manifest["trainable_params"], manifest["total_params"]),
            manifest.get("scores", {}),
            manifest,
            True,
            cfg.steps,
        )
    timings: dict[str, float] = {}
    t = time.perf_counter()
    base = load_checkpoint(cfg.base)
    model, processor = base.model, base.processor
    timings["load_base"] = time.perf_counter() - t
    task = make_task(model, processor, cfg.task)
    t = time.perf_counter()
    train_records, test_records = load_records(cfg, "train"), load_records(cfg, "test")
    val_records = load_records(cfg, "val") if cfg.eval_every else None
    if not train_records:
        raise ValueError(
            "the training set is empty; raise n_train / data_fraction or check the data files"
        )
    timings["records"] = time.perf_counter() - t
    task.fit(train_records)
    tracker = _tracker(model, cfg, track_every, track_probe, track_samples, run_dir)
    seed_everything(cfg.seed)
    model = task.prepare_model(model)
    n_stages = type(mcfg).num_stages
    model = apply_method(model, mcfg, stage=1 if n_stages > 1 else None)
    task.after_apply(model)
    if on_start is not None:
        on_start(count_parameters(model))
    t = time.perf_counter()
    enc_train, enc_test = task.encode(train_records, True), task.encode(test_records, False)
    enc_val = task.encode(val_records, False) if val_records else None
    timings["encode"] = time.perf_counter() - t
    stage_steps = [cfg.steps] if n_stages == 1 else list(mcfg.stage_steps(cfg.steps))
    if sum(stage_steps) != cfg.steps or len(stage_steps) != n_stages:
        raise ValueError(
            f"method {cfg.method}: stage_steps({cfg.steps}) = {stage_steps} does not split the steps "
            f"into {n_stages} stage(s)"
        )
    resolved_base = resolve_spec(cfg.base)
    base_sha = base.sha256 or checkpoint_sha256(resolved_base)
    if status == "resume":
        try:
            old = json.loads((run_dir / "train_config.json").read_text())
            old_sha = old.get("base_sha256") if isinstance(old, dict) else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            old_sha = None
        if old_sha and base_sha and old_sha != base_sha:
            raise ValueError(
                f"output_dir {run_dir}: the base {cfg.base} changed since this run started "
                "(sha256 differs); pass overwrite=True (--overwrite) to start over"
            )
    _make_output(run_dir, status)
    if status in ("fresh", "overwrite"):
        atomic_write_text(
            run_dir / "train_config.json",
            json.dumps(
                {
                    "train_config": cfg.to_dict(),
                    "config_hash": config_hash,
                    "base_sha256": base_sha,
                },
                indent=2,
            ),
        )

    def apply_stage(m, k: int):
        m = apply_method(m, mcfg, stage=k)
        task.after_apply(m)
        return m

    def evaluate(m):
        return evaluate_model(task, m, enc_val, val_records, cfg, device)

    desc = f"train {cfg.method} {cfg.task}"
    loop = Loop(
        cfg,
        run_dir,
        config_hash,
        task,
        enc_train,
        stage_steps,
        apply_stage,
        evaluate if enc_val is not None else None,
        device,
        progress,
        desc,
    )
    observe = None
    if tracker is not None:
        observe = tracker.maybe_measure  # eval mode, no grad, every RNG state restored
        if status != "resume":
            tracker.maybe_measure(model, 0)
    try:
        out = loop.run(
            model, callback=callback, max_steps_this_call=max_steps_this_call, observe=observe
        )
        if tracker is not None and out.step != tracker.last_step:
            tracker.measure(out.model, out.step)  # the last step, due or not
    finally:  # an interrupted run keeps what it measured (resume continues it)
        if tracker is not None and tracker.trajectory.steps:
            tracker.finish(run_dir / "track", figures=track_figures)
    model = out.model
    timings["train"] = out.seconds
    trained_numel = sum(
        p.numel() for p in {id(p): p for p in model.parameters() if id(p) in out.trained}.values()
    )
    params = ParamCount(trained_numel, count_parameters(model).total)
    if not out.finished:
        return TrainResult(
            run_dir,
            cfg,
            params,
            {},
            None,
            False,
            out.step,
            out.losses,
            out.resumed_from,
            timings,
            model,
            out.stages,
        )
    t = time.perf_counter()
    scores = evaluate_model(task, model, enc_test, test_records, cfg, device)
    timings["evaluate"] = time.perf_counter() - t
    full = get_method(cfg.method).facts.trains_all_weights  # saves every weight, not the trained
    weights = {
        n: p.detach().cpu() for n, p in model.named_parameters() if full or id(p) in out.trained
    }
    manifest = write_run(
        run_dir,
        weights=weights,
        full=full,
        processor=processor,
        fields={
            "method": cfg.method,
            "method_config": mcfg.to_dict(),
            "budget": mcfg.budget,
            "task": cfg.task,
            "task_kind": task.kind,
            "task_state": task.state(),
            "domain": None if cfg.data else cfg.domain,
            "data": cfg.data,
            "data_fraction": cfg.data_fraction,
            "seed": cfg.seed,
            "steps": cfg.steps,
            "stage_steps": stage_steps,
            "trainable_params": params.trainable,
            "total_params": params.total,
            "base": cfg.base,
            "base_path": str(Path(resolved_base).resolve())
            if Path(resolved_base).exists()
            else resolved_base,
            "base_sha256": base_sha,
            "scores": scores,
            "train_config": cfg.to_dict(),
            "config_hash": config_hash,
            "n_train_items": enc_train.n,
            "n_eval_items": enc_test.n,
            "final_loss": out.losses[-1] if out.losses else None,
            # trainable_params counts every parameter trained in any stage; per stage here
            **(
                {"stage_trainable_params": [out.stages[k][0] for k in sorted(out.stages)]}
                if n_stages > 1
                else {}
            ),
        },
    )
    shutil.rmtree(run_dir / "state", ignore_errors=True)
    with open(run_dir / "train_log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": out.step, "test": scores, "timings": timings}) + "\n")
    model.eval()
    return TrainResult(
        run_dir,
        cfg,
        params,
        scores,
        manifest,
        True,
        out.step,
        out.losses,
        out.resumed_from,
        timings,
        model,
        out.stages,
    )


# train()'s own arguments -> the tracker setting each one is (TrackSettings' field)
TRACK_ARGS = {"track_every": "every_n_steps", "track_samples": "num_samples"}


def check_call(
    *, max_steps_this_call=None, track_every=None, track_samples=128, track_probe="builtin", seed=0
) -> None:
    """:func:`train`'s arguments beside the config, checked before anything is read or
    loaded; a SettingError names the argument as :func:`train` spells it."""
    from repspace._constraints import Interval, SettingError, Types, validate

    validate(
        {
            "max_steps_this_call": [Interval(int, 1, None), None],
            "track_probe": [
                Types(str, Path, name="a probe source (a file, a folder, 'general', 'builtin')")
            ],
        },
        {"max_steps_this_call": max_steps_this_call, "track_probe": track_probe},
        owner="train",
    )
    if track_every is None:
        return
    from repspace.track.options import TrackSettings

    given = {"track_every": track_every, "track_samples": track_samples}
    try:
        TrackSettings(seed=seed, **{TRACK_ARGS[k]: v for k, v in given.items()})
    except SettingError as exc:
        ours = {v: k for k, v in TRACK_ARGS.items()}.get(exc.field)
        if ours is None:
            raise
        raise SettingError(ours, exc.value, exc.expected, "train", exc.hint) from None


def _tracker(model, cfg: TrainConfig, every: int | None, probe: str, samples: int, run_dir: Path):
    """The distortion tracker of ``train --track-every`` (its base: the loaded model, captured
    now, before the method is applied), or None; its arguments checked before any step."""
    if every is None:
        return None
    from repspace.track import Tracker
    from repspace.track.trajectory import read_trajectory

    try:
        tracker = Tracker(model, probe, every_n_steps=every, num_samples=samples, seed=cfg.seed)
    except ValueError as exc:
        raise ValueError(f"--track-every: {exc}") from None
    previous = run_dir / "track" / "trajectory.json"
    if previous.exists():  # a resumed run continues its trajectory
        try:
            tracker.trajectory.merge(read_trajectory(previous))
        except (OSError, ValueError):
            pass  # a damaged earlier trajectory: this run's replaces it
    return tracker
