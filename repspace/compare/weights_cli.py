"""`repspace weights BASE TUNED [TUNED ...] -o OUT`: the options, mapped onto
:class:`~repspace.compare.weights_api.WeightsConfig` in one place, then
:func:`~repspace.compare.weights_api.weights_report` and its summary lines."""

from __future__ import annotations

import argparse

from repspace._threads import add_threads_option

__all__ = ["add_parser", "config_from_args", "run"]


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "weights",
        help="weight-space analysis of fine-tunes: ΔW spectrum, rank, intruder dimensions",
        description="For every linear map a fine-tune changed: singular values, effective / stable "
        "rank and relative size of ΔW, and intruder dimensions (Shuttleworth et al. "
        "2024); per block beside the representation rank of a compare report.",
    )
    p.add_argument("base", help="base checkpoint (folder, hub id, 'embedded')")
    p.add_argument(
        "tuned",
        nargs="+",
        help="fine-tuned checkpoints: PEFT adapter folders, full fine-tunes, repspace run folders",
    )
    p.add_argument("-o", "--output", required=True, help="new folder for the results")
    p.add_argument(
        "--report",
        default=None,
        help="a `repspace compare` folder of the same checkpoints "
        "(adds the representation's effective-rank ratio to the figure)",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=10,
        help="tuned singular vectors examined for intruder dimensions (default 10)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="intruder if the best |cos| with "
        "every base singular vector is below this (default 0.5)",
    )
    p.add_argument(
        "--side",
        choices=["left", "right"],
        default="left",
        help="singular vectors of the output space (left, as in the paper) or input space",
    )
    p.add_argument(
        "--probe",
        default=None,
        help="also measure where each adapter acts: "
        "‖Δh‖/‖h‖ per adapted module on this probe ('builtin', 'general', a "
        ".txt/.jsonl/.csv file or an image folder; see `repspace compare --probe`)",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        default=128,
        help="probe samples for --probe and --merge-dtype (default 128)",
    )
    p.add_argument("--batch-size", type=int, default=16, help="batch size for --probe (default 16)")
    p.add_argument(
        "--merge-dtype",
        default=None,
        metavar="DTYPES",
        help="also measure merge fidelity of PEFT adapters: merge into the base in each "
        "of these comma-separated dtypes (float32, float16, bfloat16; as "
        "model.to(dtype).merge_and_unload()) and compare with the unmerged float32 "
        "model per layer (on --probe, default builtin) and per matrix",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights folder")
    add_threads_option(p, adapt_to_load=True)
    p.add_argument(
        "--quiet", action="store_true", help="no progress bars (shown when stderr is a terminal)"
    )
    # WeightsConfig fields set by an option of another name (repspace.cli.in_cli_vocabulary
    # renames every other field to its option from the parser itself)
    p.set_defaults(field_options={"merge_dtypes": "--merge-dtype", "progress": "--quiet"})
    return p


def config_from_args(args):
    """The API's settings for these options (a bad one is a SettingError naming the field;
    :func:`repspace.cli.main` names the option)."""
    from repspace.compare.weights_api import WeightsConfig

    return WeightsConfig(
        top_k=args.top_k,
        threshold=args.threshold,
        side=args.side,
        report=args.report,
        probe=args.probe,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        merge_dtypes=args.merge_dtype,
        progress=False if getattr(args, "quiet", False) else None,
    )


def run(args) -> int:
    from repspace._threads import apply_threads
    from repspace.checkpoints import resolve_spec
    from repspace.cli_errors import printable
    from repspace.compare.weights_api import summary_lines, weights_report

    settings = config_from_args(args)
    apply_threads(resolve_spec(args.base), getattr(args, "threads", None), adapt_to_load=True)
    report = weights_report(
        args.base, args.tuned, settings, output=args.output, overwrite=args.overwrite
    )
    for line in summary_lines(report):
        print(printable(line))
    return 0
