"""`repspace demo [-o OUT] [--quick]`: the preset study on the embedded model.

Trains every method family (full, LoRA, adapter, prefix, prompt, IA³, AdaLink, PT-LoRA,
PT-adapter) on shapes-world VQA from the embedded tiny BLIP, compares each run with the
base, and writes the study folder (``summary.md``, ``results/``, ``figures/``) plus one
joint compare report of every method against the base (``compare_report/``).  Every run
is tracked (``track_every`` in the preset): ``figures/trajectory.png`` shows each method's
distortion during training.  Cells and
the joint report are cached (keyed by their inputs), so a second run only rewrites the
study outputs.  ``--quick`` is a short version (a few steps, tiny data; 83-93 s on 2 busy cores) for smoke
tests (untracked); its numbers mean nothing.
"""

from __future__ import annotations

from pathlib import Path

from repspace.study import CompareSettings, StudyConfig, load_study_config, preset_path

__all__ = ["QUICK_METHODS", "add_parser", "demo_config", "run"]

QUICK_METHODS = ("base", "lora", "prefix", "pt_lora")


def demo_config(quick: bool = False) -> StudyConfig:
    """The preset ``demo`` study; ``quick``: four methods (base, LoRA, prefix, PT-LoRA),
    2 steps, tiny data and probe, untracked (each tracked run writes its own trajectory
    figures: about 4 s of matplotlib per run, more than the run's 2 steps)."""
    config = load_study_config(preset_path("demo"))
    if quick:
        config = config.replace(
            name="demo-quick",
            methods=QUICK_METHODS,
            steps=2,
            batch_size=4,
            n_train=8,
            n_eval=4,
            track_every=None,
            compare=CompareSettings(num_samples=16, batch_size=16, sample_rows=16),
        )
    return config


def add_parser(sub):
    p = sub.add_parser(
        "demo",
        help="train every method on the embedded model and compare (the preset study)",
        description="Run the preset study: every method family fine-tuned on "
        "shapes-world VQA from the embedded model, each compared "
        "with the base; writes tables, figures and a summary.",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="study folder (default: repspace-demo, or repspace-demo-quick)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke version, about 1.5 minutes on 2 busy cores (2 steps, tiny data; "
        "numbers mean nothing)",
    )
    p.add_argument("--force", action="store_true", help="recompute every cell")
    p.add_argument(
        "--no-compare-report",
        action="store_true",
        help="skip the joint compare report of every method",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from repspace._threads import add_threads_option

    add_threads_option(p)
    return p


def run(args) -> int:
    from repspace._threads import apply_threads
    from repspace.checkpoints import resolve_spec
    from repspace.study.joint import joint_compare_report
    from repspace.study.runner import run_study
    from repspace.study.summary import headline

    config = demo_config(args.quick)
    # the embedded model is small: one thread unless --threads says otherwise
    apply_threads(resolve_spec(config.base), getattr(args, "threads", None))
    out = Path(args.output or ("repspace-demo-quick" if args.quick else "repspace-demo"))
    from repspace.study.cli import _check_output

    _check_output(config, out)  # a new, empty or study folder, before any training
    print(
        f"repspace demo: {len(config.methods)} methods on the {config.base} model, task "
        f"{', '.join(config.tasks)}; writing {out}/"
    )
    try:
        result = run_study(config, out, progress=not args.quiet, force=args.force)
    except KeyboardInterrupt as exc:
        from repspace.cli_errors import Terminated

        if isinstance(exc, Terminated):  # SIGTERM: exit 143 through the CLI, not 130
            raise
        print(
            f"\nrepspace demo: interrupted; finished cells are kept in {out}/cells and the "
            "next run continues from there"
        )
        return 130
    if not args.no_compare_report and result.records:
        report = joint_compare_report(
            result, out / "compare_report", progress=not args.quiet, force=args.force
        )
        if report is not None:
            result.files["compare_report"] = report
    print()
    for line in headline(result):
        print(line)
    if "trajectory.png" in result.files:
        print(f"Distortion during training: {result.files['trajectory.png']}")
    if "compare_report" in result.files:
        print(f"Joint compare report: {result.files['compare_report']}/report.html")
    for label, error in result.failed.items():
        print(f"FAILED {label}: {error}")
    return 1 if result.failed else 0
