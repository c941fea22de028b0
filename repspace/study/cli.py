"""`repspace study CONFIG [-o OUT] [--base SPEC] [--force] [--dry-run] [--jobs 1]`."""

from __future__ import annotations

import argparse

__all__ = ["add_study_parser", "run_study_cli", "print_grid"]


def add_study_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "study",
        help="train and compare a grid of fine-tuning runs (methods × budgets × data × seeds)",
        description="Run a study: train every cell of the grid in CONFIG, compare each run with "
        "the base, and write tables, figures and summary.md.  Finished cells are "
        "cached: rerunning skips them, an interrupted study resumes.",
    )
    p.add_argument(
        "config", help="study file (.toml, .yaml or .json), or 'preset:NAME' (e.g. preset:demo)"
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="study folder (default: the config's `output_dir`, else studies/<name>)",
    )
    p.add_argument(
        "--base",
        default=None,
        metavar="SPEC",
        help="use this base checkpoint instead of the config's `base` (e.g. the local "
        "folder of the model the config names); part of every cell's key",
    )
    p.add_argument(
        "--force", action="store_true", help="recompute every cell (deletes its run folder first)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the grid (cached cells and cells to run) and an estimate of the "
        "wall time on this machine, from a short calibration (a few training "
        "steps per method, one evaluation batch, one small compare; in a "
        "temporary folder), then exit",
    )
    p.add_argument(
        "--no-estimate", action="store_true", help="with --dry-run: the grid only, no calibration"
    )
    p.add_argument("--jobs", type=int, default=1, help="cells run at once (only 1 is supported)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument(
        "--seed-baseline",
        action="store_true",
        help="also compare consecutive seeds of each method with each other (their tuned "
        "models) into results/seed_baseline.csv, so a method's movement is judged "
        "against run-to-run variation (cached per pair)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: 1 "
        "for small bases such as the embedded model, else every core; OMP_NUM_THREADS "
        "is honoured)",
    )
    return p


def _load(spec: str):
    from repspace.study import load_study_config, preset_path

    if spec.startswith("preset:"):
        return load_study_config(preset_path(spec.split(":", 1)[1]))
    return load_study_config(spec)


def print_grid(config, output, estimate: bool = False) -> None:
    """The grid, cell by cell (cached or to run); with ``estimate``, then the wall time of the
    cells to run from a short calibration (:func:`repspace.study.estimate.estimate_study`)."""
    from repspace.study.runner import plan_study

    planned = plan_study(config, output)
    done = sum(p.done for p in planned)
    print(
        f"study {config.name}: {len(planned)} cells ({done} cached, {len(planned) - done} "
        f"to run) in {output}"
    )
    for p in planned:
        c = p.train_config
        extra = (
            f"steps={c.steps} lr={c.resolved_lr():g} options={c.method_options}"
            if c is not None
            else "no training (reference)"
        )
        print(f"  {'cached ' if p.done else 'to run '} {p.label:<36} {p.key[:10]}  {extra}")
    if estimate:
        from repspace.study.estimate import estimate_study

        if done < len(planned):
            print(
                "calibrating on this machine (a few steps per method, one evaluation batch, "
                "one small compare) ...",
                flush=True,
            )
        for line in estimate_study(config, planned).lines(config.compare.num_samples):
            print(line)


def _check_output(config, output) -> None:
    """Before any training: the study folder is new, empty or a study folder (resumed in
    place), and none of the study's inputs (the base checkpoint, the probe files, the
    training data spec and every file it names), nor inside / around one."""
    from repspace.checkpoints import resolve_spec
    from repspace.outputs import check_output, has_json_schema
    from repspace.training.data import data_inputs

    inputs = [("base checkpoint", resolve_spec(config.base))]
    from repspace.probe import BUILTIN_PROBES

    inputs += [("probe data", p) for p in config.compare.probes if p not in BUILTIN_PROBES]
    data = config.train.get("data")
    inputs += data_inputs(data) if isinstance(data, str) and data else []
    check_output(
        output,
        overwrite=True,
        inputs=inputs,
        is_ours=lambda p: has_json_schema(p, "study.json", "repspace.study"),
        kind="repspace study",
    )


def run_study_cli(args) -> int:
    from pathlib import Path

    from repspace._threads import apply_threads
    from repspace.checkpoints import resolve_spec
    from repspace.study.preflight import preflight
    from repspace.study.runner import run_study
    from repspace.study.summary import headline

    if args.jobs != 1:
        raise ValueError(
            f"--jobs {args.jobs}: only --jobs 1 is supported (cells run one after "
            "another; torch already uses every core inside a cell)"
        )
    config = _load(args.config)
    if args.base:
        config = config.replace(base=args.base)
    output = Path(args.output) if args.output else config.study_dir()
    if args.dry_run:
        # the refusals of a real run, before the grid is printed (without loading the base
        # under --no-estimate: the layer names are then checked by the real run)
        preflight(config, load_base=not args.no_estimate)
        if not args.no_estimate:
            apply_threads(resolve_spec(config.base), args.threads)  # time what a run would use
        print_grid(config, output, estimate=not args.no_estimate)
        return 0
    _check_output(config, output)
    preflight(config)  # before the study folder exists: a bad study leaves nothing behind
    apply_threads(resolve_spec(config.base), args.threads)
    try:
        result = run_study(
            config, output, progress=not args.quiet, force=args.force, figures=not args.no_figures
        )
    except KeyboardInterrupt as exc:
        from repspace.cli_errors import Terminated

        if isinstance(exc, Terminated):  # SIGTERM: exit 143 through the CLI, not 130
            raise
        print(
            f"\nrepspace study: interrupted; finished cells are kept in {output}/cells; "
            "rerun the same command to continue",
            flush=True,
        )
        return 130
    if args.seed_baseline:
        from repspace.study.seed_baseline import seed_baseline

        known = len(result.notes)
        rows = seed_baseline(result, force=args.force, figures=not args.no_figures)
        from repspace.study.summary import write_summary

        write_summary(result)  # again, with the seed-baseline section and its notes
        for note in result.notes[known:]:
            print(f"  {note}")
        print(
            f"seed baseline: {len({(r['cell_a'], r['cell_b']) for r in rows})} seed pair(s) "
            f"compared, {output}/results/seed_baseline.csv"
        )
    print(
        f"\nstudy {config.name}: {len(result.records)} cells "
        f"({len(result.computed)} computed, {len(result.cached)} cached, "
        f"{len(result.failed)} failed)"
    )
    for line in headline(result):
        print(f"  {line}")
    for label, error in result.failed.items():
        print(f"  FAILED {label}: {error}")
    print(f"results: {output}/summary.md (tables in results/, figures in figures/)")
    return 1 if result.failed else 0
