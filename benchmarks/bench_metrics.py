"""Throughput and memory of streaming linear CKA (not a test; see docs/benchmarks.md).

For n ∈ {16k, 100k, 1M} rows of paired p = q = 768 float32 features, streamed in
batches through :class:`repspace.statistics.PairedMoments`, report wall time, the
process's peak RSS, and the achieved GFLOP/s as a ratio to ``torch.matmul`` GFLOP/s in
the input's dtype (float32), measured in the same run on the same machine.

Useful flops per batch: 2·b·(p² + q² + pq) (the XᵀX, YᵀY and XᵀY GEMMs).  Every
configuration runs in a fresh subprocess so that its peak RSS is its own.

    python benchmarks/bench_metrics.py                # the full table (about 1 minute)
    python benchmarks/bench_metrics.py --sizes 16384  # quick look

``--measures`` instead times issue 29's measures against the covariance pass they share
(see :func:`measures_table`): each streaming measure at n = 100k, p = 768 (target: the time
beyond the shared covariances ≤ 10 % of the covariance pass), each sample-based one at
compare's default sample size (1000 rows), as compare computes them.

    python benchmarks/bench_metrics.py --measures     # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch


def matmul_gflops(p: int, b: int, dtype: torch.dtype, repeats: int = 10) -> float:
    a, c = torch.randn(p, b, dtype=dtype), torch.randn(b, p, dtype=dtype)
    for _ in range(3):
        a @ c
    t = time.perf_counter()
    for _ in range(repeats):
        a @ c
    return 2.0 * b * p * p * repeats / (time.perf_counter() - t) / 1e9


def worker(n: int, p: int, b: int, precision: str) -> dict:
    from repspace.statistics import PairedMoments

    torch.manual_seed(0)
    # A fixed pool of batches with a large common offset (the hard case for precision);
    # generating 1M fresh rows would time the random generator, not the accumulator.
    pool = [(torch.randn(b, p) + 1e3, torch.randn(b, p) * 0.5 - 1e3) for _ in range(4)]
    acc = PairedMoments(precision=precision, paired_drift=False)
    for warm in pool:  # warm-up (sets the shift, touches every page, primes BLAS); not timed
        acc.update(*warm)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batches = max(1, n // b)
    t = time.perf_counter()
    for i in range(batches):
        acc.update(*pool[i % 4])
    seconds = time.perf_counter() - t
    cka = acc.linear_cka()
    flops = 2.0 * b * (p * p + p * p + p * p) * batches
    return {
        "n": batches * b,
        "p": p,
        "batch": b,
        "precision": precision,
        "seconds": seconds,
        "gflops": flops / seconds / 1e9,
        "cka": cka,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
    }


STREAMING = ("linear_cka", "cca_mean", "cca_r2", "svcca", "pwcca", "shape_angular")
CCA_FAMILY = ("cca_mean", "cca_r2", "svcca", "pwcca", "shape_angular")
# sample-based measures as compare asks for them (a group shares one computation per side)
SAMPLE = {
    "rbf_cka": ["rbf_cka"],
    "mmd_rbf": ["mmd_rbf"],
    "mutual_knn_overlap": ["mutual_knn_overlap"],
    "rsa_spearman": ["rsa_spearman"],
    "cknna": ["cknna"],
    "jaccard_knn": ["jaccard_knn"],
    "twonn_dimension (base, tuned, ratio)": [
        "twonn_dimension_base",
        "twonn_dimension_tuned",
        "twonn_dimension_ratio",
    ],
    "mle_dimension (base, tuned, ratio)": [
        "mle_dimension_base",
        "mle_dimension_tuned",
        "mle_dimension_ratio",
    ],
    "energy_distance": ["energy_distance"],
}


def _median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], out


def covariance_pass(n: int, p: int, b: int, precision: str):
    """One layer pair streamed through LayerwiseMoments: (seconds, accumulator).  Batches
    come from a fixed pool (y a noisy linear map of x, offset) so the generator is not timed."""
    from repspace.statistics import LayerwiseMoments

    g = torch.Generator().manual_seed(0)
    mix = torch.randn(p, p, generator=g) / p**0.5
    pool = []
    for _ in range(4):
        x = torch.randn(b, p, generator=g) * torch.linspace(0.2, 3, p) + 1e2
        pool.append((x, x @ mix + 0.5 * torch.randn(b, p, generator=g) - 1e2))
    acc = LayerwiseMoments(precision=precision)
    t = time.perf_counter()
    for i in range(max(1, n // b)):
        x, y = pool[i % 4]
        acc.update({"L": x}, {"L": y})
    return time.perf_counter() - t, acc


def measures_table(n: int, p: int, b: int, sample_rows: int, repeats: int) -> None:
    """Issue 29's cost table.  Streaming: the covariance pass, timed in compare's default
    precision (float64 GEMMs) and in ``precision="auto"`` (float32 GEMMs, the faster and so
    the stricter reference), each twice, before and after the measures (the smaller time is
    the reference); each measure's ``acc.compute(metrics=[key])`` on the float64 statistics
    (median of ``repeats``): everything it adds to the pass (centring, eigendecompositions,
    the CCA solve).  Sample-based: compare's own per-layer call on a (sample_rows, p) pair."""
    from repspace.compare.engine import _sample_metrics

    passes: dict[str, list[float]] = {"float64": [], "auto": []}
    sec, acc = covariance_pass(n, p, b, "float64")
    passes["float64"].append(sec)
    passes["auto"].append(covariance_pass(n, p, b, "auto")[0])
    rows = []
    for key in (*STREAMING, "all five CCA-family keys"):
        metrics = list(CCA_FAMILY) if key.startswith("all") else [key]
        sec, out = _median_seconds(lambda m=metrics: acc.compute(metrics=m), repeats)
        rows.append((key, sec, out["L", "L"]))
    passes["float64"].append(covariance_pass(n, p, b, "float64")[0])
    passes["auto"].append(covariance_pass(n, p, b, "auto")[0])
    ref64, ref32 = min(passes["float64"]), min(passes["auto"])
    print(f"## streaming, n = {acc.n:,}, p = q = {p}, batches of {b}")
    for prec, times in passes.items():
        print(
            f"# covariance pass, precision={prec}: {times[0]:.2f} s before, {times[1]:.2f} s "
            f"after the measures"
        )
    print(
        "\n| measure | seconds beyond the covariances (median of "
        f"{repeats}) | ratio to the float64 pass ({ref64:.2f} s, compare's default) | "
        f"ratio to the auto pass ({ref32:.2f} s) | value |"
    )
    print("|---|---:|---:|---:|---:|")
    for key, sec, values in rows:
        shown = (
            ", ".join(f"{v:.4f}" for k, v in values.items())
            if key.startswith("all")
            else f"{values[key]:.4f}"
        )
        print(
            f"| `{key}` | {sec:.3f} | {sec / ref64:.3f} | {sec / ref32:.3f} | {shown} |", flush=True
        )

    g = torch.Generator().manual_seed(1)
    x = torch.randn(sample_rows, p, generator=g) * torch.linspace(0.2, 3, p)
    y = x @ (torch.randn(p, p, generator=g) / p**0.5) + 0.5 * torch.randn(
        sample_rows, p, generator=g
    )
    print(f"\n## sample-based, {sample_rows} rows × {p} features (compare's per-layer call)\n")
    print(
        f"| measure | seconds per layer (median of {repeats}) | ratio to the float64 pass | "
        "ratio to the auto pass | value |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, keys in SAMPLE.items():
        sec, out = _median_seconds(lambda k=keys: _sample_metrics(x, y, set(k), seed=0), repeats)
        shown = ", ".join(f"{out[k]:.4f}" for k in keys)
        print(
            f"| `{label}` | {sec:.3f} | {sec / ref64:.3f} | {sec / ref32:.3f} | {shown} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16_384, 100_000, 1_000_000])
    ap.add_argument("--features", type=int, default=768)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument(
        "--float64-sizes",
        type=int,
        nargs="*",
        default=[16_384],
        help="also run precision='float64' at these sizes",
    )
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument(
        "--measures",
        action="store_true",
        help="time issue 29's measures against the covariance pass instead",
    )
    ap.add_argument("--n", type=int, default=100_000, help="--measures: rows streamed")
    ap.add_argument(
        "--sample-rows",
        type=int,
        default=1000,
        help="--measures: rows of the sample-based measures (compare's default)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.measures:
        print(
            f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            "load average (1, 5, 15 min) {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        )
        measures_table(args.n, args.features, args.batch, args.sample_rows, args.repeats)
        print("# load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        return
    if args.worker:
        n, p, b, prec = args.worker
        print(json.dumps(worker(int(n), int(p), int(b), prec)))
        return

    ref32 = matmul_gflops(args.features, args.batch, torch.float32)
    ref64 = matmul_gflops(args.features, args.batch, torch.float64)
    runs = [(n, "auto") for n in args.sizes] + [(n, "float64") for n in args.float64_sizes]
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"# torch.matmul ({args.features}x{args.batch} @ {args.batch}x{args.features}): "
        f"float32 {ref32:.1f} GFLOP/s, float64 {ref64:.1f} GFLOP/s\n"
    )
    print(
        "| n | precision | seconds | GFLOP/s | ratio to float32 matmul | peak RSS (MiB) "
        "| RSS growth while streaming (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, prec in runs:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                str(n),
                str(args.features),
                str(args.batch),
                prec,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {r['n']:,} | {prec} | {r['seconds']:.2f} | {r['gflops']:.1f} | "
            f"{r['gflops'] / ref32:.2f} | {r['peak_rss_mib']:.0f} | {r['rss_growth_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
