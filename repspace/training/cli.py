"""`repspace train --method M --task captioning|vqa|classify ...`: argument parsing and output.

The lead wires it into ``repspace/cli.py`` as
``"train": ("repspace.training.cli", "add_train_parser", "run_train")``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = [
    "OPTION_OF",
    "add_train_parser",
    "config_from_args",
    "run_train",
    "parse_option",
    "resume_command",
]

_PARSER: list = []  # the train parser, to write the command that resumes an interrupted run

# API name (a TrainConfig field, a train() argument) -> the option that sets it: one table, so
# an error names what the caller typed.  A method's own option NAME is ``--option NAME``.
OPTION_OF = {
    "base": "--base",
    "method": "--method",
    "method_options": "--option",
    "task": "--task",
    "domain": "--domain",
    "data": "--data",
    "data_fraction": "--data-fraction",
    "n_train": "--n-train",
    "n_eval": "--n-eval",
    "image_size": "--image-size",
    "steps": "--steps",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "warmup_ratio": "--warmup-ratio",
    "schedule": "--schedule",
    "seed": "--seed",
    "eval_every": "--eval-every",
    "save_every": "--save-every",
    "device": "--device",
    "output_dir": "--output",
    "overwrite": "--overwrite",
    "track_every": "--track-every",
    "track_probe": "--track-probe",
    "track_samples": "--track-samples",
}


def parse_option(text: str) -> tuple[str, object]:
    """``"r=8"`` -> ``("r", 8)``; values parse as JSON when they can (numbers, true/false,
    lists), a comma makes a list (``towers=text,vision``), anything else stays a string."""
    if "=" not in text:
        raise ValueError(f"--option {text!r}: expected NAME=VALUE (e.g. r=8 or towers=text,vision)")
    key, value = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ValueError(f"--option {text!r}: empty option name")

    def one(v: str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v

    if "," in value and not value.startswith("["):
        return key, [one(v.strip()) for v in value.split(",") if v.strip()]
    return key, one(value)


def add_train_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="fine-tune a base model with a PEFT method (or full FT) on captioning/VQA",
        description="Fine-tune BASE with METHOD on the built-in shapes world (or COCO/VQAv2-style data) "
        "and write a run folder that `repspace compare BASE RUN` reads.",
    )
    p.add_argument(
        "--method",
        required=True,
        help="method name (see `repspace methods` / repspace.methods.available_methods())",
    )
    p.add_argument(
        "--task",
        required=True,
        choices=["captioning", "vqa", "classify"],
        help="classify: sentence classification (the colour of the leftmost/rightmost shape of a "
        "shapes-world sentence) for text encoders (BERT/RoBERTa folders), causal LMs and T5",
    )
    p.add_argument(
        "--base", default="embedded", help="base checkpoint: 'embedded', a model folder or hub id"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="method option, repeatable (e.g. --option r=8 --option towers=text,vision)",
    )
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: per method family)"
    )
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-ratio", type=float, default=0.05)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "linear", "constant"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-fraction", type=float, default=1.0)
    p.add_argument("--domain", default="source", help="shapes-world domain: source or shifted")
    p.add_argument(
        "--data",
        default=None,
        help="data-spec JSON for COCO/VQAv2-style data (default: shapes world)",
    )
    p.add_argument("--n-train", type=int, default=2000, help="shapes-world training images")
    p.add_argument(
        "--n-eval", type=int, default=200, help="held-out images (shapes world) / items (real data)"
    )
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: 1 "
        "for small bases such as the embedded model, else every core; OMP_NUM_THREADS "
        "is honoured)",
    )
    p.add_argument(
        "-o", "--output", default=None, help="run folder (default runs/<method>-<task>-s<seed>)"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--resume", action="store_true", help="require an unfinished run in --output to resume"
    )
    g.add_argument(
        "--overwrite", action="store_true", help="start over in an --output holding another run"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--track-every",
        type=int,
        default=None,
        metavar="N",
        help="measure the distortion from the base every N steps (and at step 0) and "
        "write <output>/track/ (trajectory.csv, .json, figures); changes no weight",
    )
    p.add_argument(
        "--track-probe",
        default="builtin",
        help="probe of --track-every, as compare's --probe (default: %(default)s)",
    )
    p.add_argument(
        "--track-samples",
        type=int,
        default=128,
        help="probe samples of --track-every (default: %(default)s)",
    )
    _PARSER[:] = [p]
    return p


def resume_command(args, output_dir: str) -> str:
    """The ``repspace train`` command line that resumes the run ``args`` started: every
    option given a non-default value, ``-o`` spelled out, ``--overwrite`` dropped (it would
    start over) and ``--resume`` added."""
    import shlex

    words = ["repspace", "train"]
    skip = {"help", "output", "overwrite", "resume"}
    for action in _PARSER[0]._actions if _PARSER else []:
        if action.dest in skip or not action.option_strings:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(value, bool):
            words.append(flag)
        elif isinstance(value, list):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    words += ["-o", str(output_dir), "--resume"]
    return " ".join(shlex.quote(w) for w in words)


def _say_interrupted(args, output_dir: str, steps: int, err) -> None:
    """Ctrl-C / SIGTERM during training: which step is saved and the command that resumes."""
    from repspace.training.state import latest_state

    saved = latest_state(Path(output_dir))
    if saved is None or not isinstance(saved.get("step"), int):
        print(
            f"repspace train: no step of {output_dir} was saved (stopped before the first step "
            "ended); rerunning the same command starts it again",
            file=err,
            flush=True,
        )
        return
    print(
        f"repspace train: state saved at step {saved['step']} of {steps} in "
        f"{Path(output_dir) / 'state'}; resume with:\n  {resume_command(args, output_dir)}",
        file=err,
        flush=True,
    )


def _stage_summary(manifest: dict | None) -> str:
    """``" (stage 1: 5,760; stage 2: 14,976)"`` from a multi-stage run's manifest, else ``""``."""
    counts = (manifest or {}).get("stage_trainable_params")
    if not isinstance(counts, list) or len(counts) < 2:
        return ""
    return " (" + "; ".join(f"stage {k}: {n:,}" for k, n in enumerate(counts, 1)) + ")"


def config_from_args(args):
    """``(TrainConfig, the method's config)`` for these options, every setting checked before
    anything is read or loaded; a bad one is a one-line error naming the option (a method
    option as ``--option NAME``)."""
    from repspace._constraints import SettingError
    from repspace.methods import make_config
    from repspace.training import TrainConfig
    from repspace.training.api import check_call

    try:
        options = dict(parse_option(o) for o in args.option)
        cfg = TrainConfig(
            base=args.base,
            method=args.method,
            method_options=options,
            task=args.task,
            domain=args.domain,
            data=args.data,
            data_fraction=args.data_fraction,
            n_train=args.n_train,
            n_eval=args.n_eval,
            image_size=args.image_size,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_ratio=args.warmup_ratio,
            schedule=args.schedule,
            seed=args.seed,
            eval_every=args.eval_every,
            save_every=args.save_every,
            device=args.device,
            output_dir=args.output,
            overwrite=args.overwrite,
        )
        check_call(
            track_every=args.track_every,
            track_samples=args.track_samples,
            track_probe=args.track_probe,
            seed=cfg.seed,
        )
    except SettingError as exc:
        raise exc.in_vocabulary(OPTION_OF) from None
    try:
        return cfg, make_config(cfg.method, **options)
    except SettingError as exc:  # a method's option: not a field of TrainConfig
        raise exc.in_vocabulary({exc.field: f"--option {exc.field}"}) from None


def run_train(args) -> int:
    from repspace._threads import apply_threads
    from repspace.checkpoints import resolve_spec
    from repspace.training import train
    from repspace.training.state import latest_state

    cfg, method_config = config_from_args(args)
    if args.resume and latest_state(Path(cfg.output_dir)) is None:
        raise ValueError(f"--resume: {cfg.output_dir} holds no unfinished run to resume")
    err = sys.stderr if args.json else sys.stdout
    threads = apply_threads(resolve_spec(cfg.base), args.threads)
    header = (
        f"repspace train: {cfg.method} on {cfg.task} from {cfg.base} -> {cfg.output_dir} "
        f"(lr {cfg.resolved_lr():g}, {cfg.steps} steps, {threads} thread{'s' * (threads > 1)})"
    )
    if not args.json:
        print(header, file=err)

    n_stages = type(method_config).num_stages

    def announce(params) -> None:
        if args.json:  # on stderr: only once training starts, so a refusal stays one line there
            print(header, file=err)
        if n_stages > 1:  # the manifest counts every stage: the total comes at the end
            print(
                f"trainable parameters in stage 1 of {n_stages}: {params}; later stages add "
                "theirs (the total over all stages, which the manifest records, is printed "
                "at the end)",
                file=err,
                flush=True,
            )
        else:
            print(f"trainable parameters: {params}", file=err, flush=True)

    try:
        result = train(
            cfg,
            progress=not args.no_progress,
            on_start=announce,
            track_every=args.track_every,
            track_probe=args.track_probe,
            track_samples=args.track_samples,
        )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the loop saved its last complete step
        _say_interrupted(args, cfg.output_dir, cfg.steps, sys.stderr)
        raise
    if n_stages > 1 and result.manifest is not None:
        print(
            f"trainable parameters over all {n_stages} stages: {result.params}"
            f"{_stage_summary(result.manifest)}, as the manifest records",
            file=err,
        )
    if result.resumed_from is not None:
        print(f"resumed from step {result.resumed_from}", file=err)
    if args.json:
        print(
            json.dumps(
                {
                    "run_dir": str(result.run_dir),
                    "scores": result.scores,
                    "trainable_params": result.params.trainable,
                    "total_params": result.params.total,
                    "resumed_from": result.resumed_from,
                    "timings": result.timings,
                },
                indent=2,
            )
        )
    else:
        for k, v in result.scores.items():
            print(f"  {k:<24} {v:.4f}")
        print(f"run folder: {result.run_dir}")
        if args.track_every:
            print(f"distortion trajectory: {Path(result.run_dir) / 'track'}")
    return 0
