"""`repspace compare BASE TUNED [TUNED ...] -o OUT`: argument parsing and output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from repspace._threads import add_threads_option
from repspace.report.summary import summarize
from repspace.report.tables import terminal_table

if TYPE_CHECKING:
    from repspace.compare.settings import CompareConfig


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="how far tuned checkpoints moved the base's representations",
        description="Compare the per-layer representations of one or more tuned checkpoints "
        "with the base checkpoint and write a report folder.",
    )
    p.add_argument(
        "base",
        help="base checkpoint: HF model folder or hub id (given alone: the "
        "tuned checkpoint, an adapter or repspace run, compared with the base it records)",
    )
    p.add_argument(
        "tuned",
        nargs="*",
        help="tuned checkpoint(s): HF folder, PEFT adapter folder, "
        "weights file (.safetensors/.ckpt/.pt/.bin) or repspace training output",
    )
    p.add_argument(
        "--name",
        action="append",
        default=None,
        metavar="WHICH=LABEL",
        help="label of a checkpoint in the report (repeatable): WHICH is base, "
        "tuned1, tuned2, ... (in command-line order) or the checkpoint exactly as "
        "given, e.g. --name base=MiniLM --name tuned1=LoRA-r8",
    )
    p.add_argument(
        "-o", "--output", default="repspace-report", help="report folder (default: %(default)s)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.add_argument(
        "--probe",
        default="builtin",
        help="probe data: 'builtin' (shapes-world "
        "captions and images), 'general' (256 diverse general-text sentences on 16 "
        "topics: how far the model moved off its training task), a .txt (one sample "
        "per line), .jsonl/.csv (text and/or image), or an image folder",
    )
    p.add_argument(
        "--num-samples", type=int, default=512, help="probe samples (default %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="max tokens per text sample")
    p.add_argument(
        "--layers",
        default="blocks",
        help="comma-separated layer names, globs, re:REGEX "
        "or presets (blocks, vision, text, embeddings); see `repspace layers`",
    )
    p.add_argument("--pooling", default="mean", choices=["mean", "first", "cls", "last", "tokens"])
    p.add_argument(
        "--metrics",
        type=_csv_list,
        default=None,
        help="comma-separated metric names, families (effective_rank, mmd, ...), "
        "'default' (what a plain compare computes) or 'all' (every metric, opt-in "
        "ones included), mixed freely: default,linear_cka_null adds one metric "
        "(default: default; `repspace metrics` lists them)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda, cuda:1, mps or auto (under torchrun, cuda/auto mean each rank's own GPU)",
    )
    p.add_argument(
        "--device-map",
        default=None,
        help="load the models with accelerate's "
        "device_map (e.g. auto: layers spread over the GPUs, then CPU); overrides --device",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights dtype (default auto: each checkpoint's own, torch_dtype / dtype "
        "of its config.json, float32 when it names none, weights memory-mapped; "
        "float32 upcasts; recorded in the report)",
    )
    p.add_argument(
        "--load-in-4bit",
        action="store_true",
        help="load the models 4-bit through bitsandbytes (NF4, as QLoRA trains; needs "
        "bitsandbytes and a CUDA GPU)",
    )
    p.add_argument(
        "--load-in-8bit",
        action="store_true",
        help="load the models 8-bit through bitsandbytes (needs bitsandbytes and a CUDA GPU)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="read only the configs (no weights) and print the memory of weights, "
        "statistics (per route), capture buffer and activations, and each "
        "layer's route; exit 2 when it cannot fit the free memory",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="with --plan, when it fits: also load the models and run one batch of "
        "the comparison to estimate its time (this reads the weights)",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=None,
        help="under torchrun: seconds a rank waits for the others before giving up (default 600)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--base-override",
        "--base",
        dest="base_override",
        default=None,
        help="apply adapters / weights files onto this model instead of BASE (the "
        "report's settings.base_override; --base is the older spelling)",
    )
    p.add_argument(
        "--two-models",
        action="store_true",
        help="load the base separately even for a PEFT adapter (default: the base is "
        "the adapter's model with the adapter disabled, one model in memory, "
        "where that is exactly the base; the report says which was used)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="model config (folder or config.json) naming the architecture of bare weights files",
    )
    p.add_argument(
        "--non-strict",
        action="store_true",
        help="load weights files even when some keys are missing or unexpected",
    )
    p.add_argument(
        "--precision",
        default="float64",
        choices=["float64", "auto"],
        help="GEMM precision of the statistics (default %(default)s)",
    )
    p.add_argument(
        "--sample-rows",
        type=int,
        default=1000,
        help="rows kept per layer for RBF CKA, RBF MMD, k-NN overlap and the embedding",
    )
    p.add_argument(
        "--spectrum-layers",
        type=_csv_list,
        default=None,
        help="layers for the spectrum plot (default: first, middle, last)",
    )
    p.add_argument(
        "--tuned-per-pass",
        type=int,
        default=None,
        metavar="N",
        help="at most N tuned checkpoints per pass over the probe (default: all in one pass, "
        "k+1 forwards per batch; each holds its own statistics, 24*L*d^2 bytes: "
        "lower N when they do not fit, at one more base forward per batch and pass)",
    )
    _add_analysis_options(p)
    p.add_argument(
        "--task-id",
        type=int,
        default=None,
        metavar="N",
        help="task index fed (as task_ids) to task-conditioned adapters: peft multitask "
        "prompt tuning and Poly",
    )
    p.add_argument(
        "--embedding",
        default="none",
        choices=["none", "umap", "pca"],
        help="a 2-D map of the last layer's row sample (opt in: umap, or pca; default: none)",
    )
    p.add_argument(
        "--embedding-layer", default=None, help="layer of the 2-D embedding (default: last)"
    )
    p.add_argument(
        "--no-report", action="store_true", help="print results without writing a folder"
    )
    p.add_argument(
        "--json", action="store_true", help="print machine-readable JSON instead of a table"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="print the wall time of each stage (load, "
        "inputs, forward, pooling, statistics, metrics, report) on stderr at the end",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_option(p, adapt_to_load=True)
    # CompareConfig fields set by an option of another name (repspace.cli.in_cli_vocabulary
    # renames every other field to its option from the parser itself)
    p.set_defaults(
        field_options={
            "strict": "--non-strict",
            "progress": "--quiet",
            **{o.field: o.flag for o in _analysis_options() if o.field and o.field != o.dest},
        }
    )
    return p


def _analysis_options() -> list:
    """The registered analyses' options, in report order
    (:mod:`repspace.report.analysis_registry`; the built-ins register with
    :mod:`repspace.compare.analyses`)."""
    import repspace.compare.analyses  # noqa: F401 - registers the built-in analyses
    from repspace.report.analysis_registry import analyses

    return [o for a in analyses() for o in a.options]


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    """One option per registered analysis option: a flag, or a value (``metavar``)."""
    for o in _analysis_options():
        if o.metavar is None:
            p.add_argument(o.flag, action="store_true", help=o.help)
        else:
            p.add_argument(o.flag, default=None, metavar=o.metavar, help=o.help)


def _analysis_settings(args) -> dict:
    """The CompareConfig values the analyses' options set: each built-in's own field, and
    ``analyses``, the names of the others whose flag was given."""
    from repspace.report.analysis_registry import analyses

    values: dict = {}
    named = []
    for a in analyses():
        for o in a.options:
            given = getattr(args, o.dest, None)  # registered after this parser: not given
            if o.field is None:
                if given:
                    named.append(a.name)
            elif o.metavar is None:
                values[o.field] = bool(given)
            else:  # an empty value is the option not given
                values[o.field] = (o.parse(given) if o.parse else given) if given else None
    return {**values, "analyses": tuple(dict.fromkeys(named)) or None}


def _inputs(args) -> list[tuple[str, str | None]]:
    """What this comparison reads (the output may not be, hold or lie inside any of them)."""
    from repspace.checkpoints import resolve_spec

    specs = [
        ("base checkpoint", args.base),
        *(("tuned checkpoint", t) for t in args.tuned),
        ("--base-override checkpoint", args.base_override),
        ("--config", args.config),
    ]
    found = [(what, resolve_spec(s)) for what, s in specs if s]
    return found + ([("probe data", args.probe)] if args.probe != "builtin" else [])


def resolve_positionals(args) -> None:
    """``repspace compare ADAPTER``: the adapter (or repspace run) is the tuned checkpoint and
    the base is the one it records."""
    if args.tuned:
        return
    from repspace.compare.plan_fast import recorded_adapter_base

    # an adapter's record read without the loader's imports (torch) where it is plain
    base = args.base_override or recorded_adapter_base(args.base)  # --base X: compare with X
    if not base:
        from repspace.checkpoints.loader import recorded_base

        base = recorded_base(args.base)
    if not base:
        raise ValueError(
            f"{args.base}: give BASE TUNED; a single checkpoint must be a PEFT adapter "
            "or repspace run that records its base model"
        )
    args.tuned, args.base = [args.base], base


def parse_names(args) -> tuple[str | None, list[str] | None]:
    """``--name WHICH=LABEL`` options as (base label, tuned labels); one-line errors."""
    if not args.name:
        return None, None
    labels: dict[str, str] = {}
    for item in args.name:
        which, sep, label = item.partition("=")
        which, label = which.strip(), label.strip()
        if not sep or not which or not label:
            raise ValueError(
                f"--name {item!r}: expected WHICH=LABEL, e.g. base=MiniLM or tuned1=LoRA-r8"
            )
        if which == "base" or which == args.base:
            key = "base"
        elif which.startswith("tuned") and which[5:].isdigit():
            i = int(which[5:])
            if not 1 <= i <= len(args.tuned):
                raise ValueError(
                    f"--name {item!r}: there are {len(args.tuned)} tuned "
                    f"checkpoint(s) (tuned1..tuned{len(args.tuned)})"
                )
            key = f"tuned{i}"
        elif which in args.tuned:
            if args.tuned.count(which) > 1:
                raise ValueError(
                    f"--name {item!r}: {which} is given twice; name it tuned1, tuned2, ..."
                )
            key = f"tuned{args.tuned.index(which) + 1}"
        else:
            raise ValueError(
                f"--name {item!r}: {which!r} is neither base, tunedN nor a "
                "checkpoint on the command line"
            )
        if key in labels:
            raise ValueError(f"--name: {key} is named twice ({labels[key]!r}, {label!r})")
        labels[key] = label
    base = labels.get("base")
    tuned = [labels.get(f"tuned{i}") for i in range(1, len(args.tuned) + 1)]
    given = [x for x in [base, *tuned] if x]
    dup = next((x for x in given if given.count(x) > 1), None)
    if dup:
        raise ValueError(f"--name: the label {dup!r} is given to two checkpoints")
    return base, (tuned if any(tuned) else None)


def swapped_warning(base: str, tuned: list[str]) -> str | None:
    """A warning when the "base" is itself an adapter or run whose recorded base is one of the
    tuned checkpoints (base and tuned swapped)."""
    from pathlib import Path

    from repspace.checkpoints import resolve_spec
    from repspace.checkpoints.loader import recorded_base

    try:
        parent = recorded_base(base)
    except Exception:  # noqa: BLE001 - the load proper reports unusable checkpoints
        return None
    if not parent:
        return None

    def same(a: str, b: str) -> bool:
        try:
            return a == b or Path(resolve_spec(a)).resolve() == Path(resolve_spec(b)).resolve()
        except Exception:  # noqa: BLE001
            return False

    hit = next((t for t in tuned if same(parent, t)), None)
    if hit is None:
        return (
            f"the base {base} is itself fine-tuned (it records the base {parent}); the "
            "report measures the tuned checkpoints against it, not against a pre-trained model"
        )
    return (
        f"base and tuned look swapped: the base {base} is fine-tuned from {hit}, which is "
        f"given as a tuned checkpoint; did you mean `repspace compare {hit} {base}`?"
    )


def preflight(args) -> tuple[CompareConfig, tuple[str | None, list[str] | None]]:
    """Every check that needs no model, before minutes of loading: settings, output folder.
    Returns the settings and the ``--name`` labels (each made and checked once, here)."""
    from repspace.compare.options import check_placement
    from repspace.outputs import check_output

    resolve_positionals(args)
    labels = parse_names(args)
    settings = settings_from_args(args)  # every setting checked; the option named if bad
    check_placement(
        settings.device, settings.device_map, placed=settings.load_in_4bit or settings.load_in_8bit
    )
    if args.calibrate and not args.plan:
        raise ValueError("--calibrate: only with --plan (it times one batch to estimate the run)")
    if args.plan:
        return settings, labels  # writes nothing (and loads nothing unless --calibrate)
    from repspace.checkpoints.quantization import check_quantization

    check_quantization(args.load_in_4bit, args.load_in_8bit)  # before minutes of loading
    if not args.no_report:  # on every rank (read-only): all refuse together, none waits
        check_output(args.output, overwrite=args.overwrite, inputs=_inputs(args))
    return settings, labels


def settings_from_args(args) -> CompareConfig:
    """The API's settings for these parsed options (one name each: ``--num-samples`` is
    ``num_samples``)."""
    from repspace.compare.settings import CompareConfig

    layers = _csv_list(args.layers)
    return CompareConfig(
        probe=args.probe,
        num_samples=args.num_samples,
        max_length=args.max_length,
        base_override=args.base_override,
        config=args.config,
        strict=not args.non_strict,
        device_map=args.device_map,
        dtype=args.dtype,
        two_models=args.two_models,
        load_in_4bit=args.load_in_4bit,
        load_in_8bit=args.load_in_8bit,
        dist_timeout=args.dist_timeout,
        layers=layers[0] if len(layers) == 1 else layers,
        pooling=args.pooling,
        metrics=args.metrics,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        precision=args.precision,
        sample_rows=args.sample_rows,
        spectrum_layers=args.spectrum_layers,
        embedding=args.embedding,
        embedding_layer=args.embedding_layer,
        progress=not args.quiet and not args.json,
        tuned_per_pass=args.tuned_per_pass,
        task_id=args.task_id,
        **_analysis_settings(args),
    )


def _plan(args, settings: CompareConfig) -> int:
    """``--plan``: the table from the configs alone; exit 2 (one line) when it cannot fit."""
    from repspace.cli_errors import printable
    from repspace.compare.plan_fast import plan_from_args

    plan = plan_from_args(args, settings)  # from config.json alone, without torch, where exact
    if plan is None:
        from repspace.compare.plan import plan_compare

        plan = plan_compare(args.base, args.tuned, settings, calibrate=args.calibrate)
    if args.json:
        json.dump(plan.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(printable(plan.to_text()))
    sys.stdout.flush()
    plan.check_fits()  # ValueError: one line on stderr, exit 2
    return 0


def run(args) -> int:
    from repspace._profile import profiling

    with profiling() as profile:
        code = _run(args)
    if args.profile and int(os.environ.get("RANK", 0)) == 0:
        print(profile.table(), file=sys.stderr)
    return code


def _run(args) -> int:
    from repspace._profile import stage

    settings, (base_label, tuned_labels) = preflight(args)
    if args.plan:
        return _plan(args, settings)
    from repspace._threads import apply_threads
    from repspace.checkpoints import resolve_spec
    from repspace.compare.api import compare

    apply_threads(resolve_spec(args.base), args.threads, adapt_to_load=True)  # forwards only
    swapped = swapped_warning(args.base, args.tuned)
    if swapped:
        import warnings

        from repspace._validation import RepspaceWarning

        warnings.warn(RepspaceWarning(swapped), stacklevel=1)
    result = compare(args.base, args.tuned, settings)
    if base_label or tuned_labels:
        from repspace.report.result import rename_checkpoint

        # unnamed ones keep their default (folder) name; a label may take a default's name
        # only if that checkpoint is renamed too (checked: labels are unique, see below)
        renames = [
            (info, label)
            for info, label in zip(
                [result.base, *result.tuned], [base_label, *(tuned_labels or [])]
            )
            if label
        ]
        taken = {i.name for i in [result.base, *result.tuned]} - {i.name for i, _ in renames}
        clash = next((label for _, label in renames if label in taken), None)
        if clash:
            raise ValueError(f"--name: {clash!r} is already the name of another checkpoint")
        for k, (info, label) in enumerate(renames):  # via unique temporaries: a<->b swaps work
            rename_checkpoint(result, info.name, f"\x00{k}", info)
        for k, (info, label) in enumerate(renames):
            rename_checkpoint(result, f"\x00{k}", label, info)
    if swapped:
        result.warnings.append(f"RepspaceWarning: {swapped}")
    if int(os.environ.get("RANK", 0)) != 0:
        return 0  # under torchrun only rank 0 writes and prints; every rank has the result
    with stage("report"):
        out = None
        if not args.no_report:
            from repspace.report.writer import write_report  # matplotlib: only when writing

            out = write_report(result, args.output, overwrite=args.overwrite, inputs=_inputs(args))
    if args.json:
        from repspace.report.writer import report_dict

        payload = report_dict(result, summarize(result), {})
        payload["output"] = str(out) if out else None
        json.dump(payload, sys.stdout, indent=2)
        print()
        return 0
    from repspace.cli_errors import printable  # names may carry terminal escape sequences

    print(printable(terminal_table(result)))
    print()
    print(printable(summarize(result)))
    if out:
        print(
            printable(
                f"\nreport: {out}/report.html (also report.md, report.json, metrics.csv, plots/)"
            )
        )
    return 0
