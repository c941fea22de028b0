"""`repspace compare BASE TUNED [TUNED ...] -o OUT`: argument parsing and output."""
from __future__ import annotations

import argparse
import json
import os
import sys

from repspace.report import terminal_table, write_report
from repspace.report.summary import summarize
from repspace.report.writer import report_dict


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare", help="how far tuned checkpoints moved the base's representations",
        description="Compare the per-layer representations of one or more tuned checkpoints "
                    "with the base checkpoint and write a report folder.")
    p.add_argument("base", help="base checkpoint: HF model folder or hub id")
    p.add_argument("tuned", nargs="+", help="tuned checkpoint(s): HF folder, PEFT adapter folder, "
                   "weights file (.safetensors/.ckpt/.pt/.bin) or repspace training output")
    p.add_argument("-o", "--output", default="repspace-report", help="report folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.add_argument("--probe", default="builtin", help="probe data: 'builtin', a .txt (one sample "
                   "per line), .jsonl/.csv (text and/or image), or an image folder")
    p.add_argument("--num-samples", type=int, default=512, help="probe samples (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="max tokens per text sample")
    p.add_argument("--layers", default="blocks", help="comma-separated layer names, globs, re:REGEX "
                   "or presets (blocks, vision, text, embeddings); see `repspace layers`")
    p.add_argument("--pooling", default="mean", choices=["mean", "first", "cls", "last", "tokens"])
    p.add_argument("--metrics", type=_csv_list, default=None,
                   help="comma-separated metric names to report (default: all)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps or auto (under torchrun, "
                   "cuda/auto mean each rank's own GPU)")
    p.add_argument("--device-map", default=None, help="load the models with accelerate's "
                   "device_map (e.g. auto: layers spread over the GPUs, then CPU); overrides --device")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="weights dtype (default float32; bfloat16 halves the memory of big models)")
    p.add_argument("--dist-timeout", type=float, default=None, help="under torchrun: seconds a "
                   "rank waits for the others before giving up (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base", dest="base_override", default=None,
                   help="apply adapters / weights files onto this model instead of BASE")
    p.add_argument("--config", default=None, help="model config (folder or config.json) naming "
                   "the architecture of bare weights files")
    p.add_argument("--non-strict", action="store_true",
                   help="load weights files even when some keys are missing or unexpected")
    p.add_argument("--precision", default="float64", choices=["float64", "auto"],
                   help="GEMM precision of the statistics (default %(default)s)")
    p.add_argument("--sample-rows", type=int, default=1000,
                   help="rows kept per layer for RBF CKA, RBF MMD, k-NN overlap and the embedding")
    p.add_argument("--spectrum-layers", type=_csv_list, default=None,
                   help="layers for the spectrum plot (default: first, middle, last)")
    p.add_argument("--tuned-per-pass", type=int, default=None, metavar="N",
                   help="at most N tuned checkpoints per pass over the probe (default: all in one pass, "
                        "k+1 forwards per batch; each holds its own statistics, 24*L*d^2 bytes: "
                        "lower N when they do not fit, at one more base forward per batch and pass)")
    p.add_argument("--task-id", type=int, default=None, metavar="N",
                   help="task index fed (as task_ids) to task-conditioned adapters: peft multitask "
                        "prompt tuning and Poly")
    p.add_argument("--embedding", default="umap", choices=["umap", "pca", "none"])
    p.add_argument("--embedding-layer", default=None, help="layer of the 2-D embedding (default: last)")
    p.add_argument("--no-report", action="store_true", help="print results without writing a folder")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    p.add_argument("--profile", action="store_true", help="print the wall time of each stage (load, "
                   "inputs, forward, pooling, statistics, metrics, report) on stderr at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _inputs(args) -> list[tuple[str, str | None]]:
    """What this comparison reads (the output may not be, hold or lie inside any of them)."""
    from repspace.checkpoints import resolve_spec

    specs = [("base checkpoint", args.base), *(("tuned checkpoint", t) for t in args.tuned),
             ("--base checkpoint", args.base_override), ("--config", args.config)]
    found = [(what, resolve_spec(s)) for what, s in specs if s]
    return found + ([("probe data", args.probe)] if args.probe != "builtin" else [])


def preflight(args) -> None:
    """Every check that needs no model, before minutes of loading: settings, output folder."""
    from repspace.compare.options import check_settings
    from repspace.outputs import check_output

    layers = _csv_list(args.layers)
    check_settings(num_samples=args.num_samples, batch_size=args.batch_size,
                   max_length=args.max_length, sample_rows=args.sample_rows, metrics=args.metrics,
                   layers=layers, dist_timeout=args.dist_timeout,
                   tuned_per_pass=args.tuned_per_pass, spectrum_layers=args.spectrum_layers)
    if not args.no_report:  # on every rank (read-only): all refuse together, none waits
        check_output(args.output, overwrite=args.overwrite, inputs=_inputs(args))


def run(args) -> int:
    from repspace._profile import profiling

    with profiling() as profile:
        code = _run(args)
    if args.profile and int(os.environ.get("RANK", 0)) == 0:
        print(profile.table(), file=sys.stderr)
    return code


def _run(args) -> int:
    from repspace._profile import stage
    from repspace.compare.engine import compare

    preflight(args)
    layers = _csv_list(args.layers)
    result = compare(
        args.base, args.tuned, probe=args.probe, num_samples=args.num_samples,
        base_override=args.base_override, config=args.config, strict=not args.non_strict,
        max_length=args.max_length, batch_size=args.batch_size, seed=args.seed,
        layers=layers[0] if len(layers) == 1 else layers, pooling=args.pooling,
        metrics=args.metrics, device=args.device, device_map=args.device_map,
        dist_timeout=args.dist_timeout, dtype=args.dtype, precision=args.precision,
        sample_rows=args.sample_rows, spectrum_layers=args.spectrum_layers,
        embedding=args.embedding, embedding_layer=args.embedding_layer,
        tuned_per_pass=args.tuned_per_pass, task_id=args.task_id,
        progress=not args.quiet and not args.json)
    if int(os.environ.get("RANK", 0)) != 0:
        return 0  # under torchrun only rank 0 writes and prints; every rank has the result
    with stage("report"):
        out = None if args.no_report else write_report(result, args.output, overwrite=args.overwrite,
                                                       inputs=_inputs(args))
    if args.json:
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
        print(printable(f"\nreport: {out}/report.html (also report.md, report.json, metrics.csv, "
                        "plots/)"))
    return 0
