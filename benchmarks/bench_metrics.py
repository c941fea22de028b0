"""Throughput and memory of streaming linear CKA (not a test; see docs/benchmarks.md).

For n ∈ {16k, 100k, 1M} rows of paired p = q = 768 float32 features, streamed in
batches through :class:`repspace.statistics.PairedMoments`, report wall time, the
process's peak RSS, and the achieved GFLOP/s as a ratio to ``torch.matmul`` GFLOP/s in
the input's dtype (float32), measured in the same run on the same machine.

Useful flops per batch: 2·b·(p² + q² + pq) (the XᵀX, YᵀY and XᵀY GEMMs).  Every
configuration runs in a fresh subprocess so that its peak RSS is its own.

    python benchmarks/bench_metrics.py                # the full table (about 1 minute)
    python benchmarks/bench_metrics.py --sizes 16384  # quick look
"""
from __future__ import annotations

import argparse
import json
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
    return {"n": batches * b, "p": p, "batch": b, "precision": precision, "seconds": seconds,
            "gflops": flops / seconds / 1e9, "cka": cka,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16_384, 100_000, 1_000_000])
    ap.add_argument("--features", type=int, default=768)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--float64-sizes", type=int, nargs="*", default=[16_384],
                    help="also run precision='float64' at these sizes")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        n, p, b, prec = args.worker
        print(json.dumps(worker(int(n), int(p), int(b), prec)))
        return

    ref32 = matmul_gflops(args.features, args.batch, torch.float32)
    ref64 = matmul_gflops(args.features, args.batch, torch.float64)
    runs = [(n, "auto") for n in args.sizes] + [(n, "float64") for n in args.float64_sizes]
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print(f"# torch.matmul ({args.features}x{args.batch} @ {args.batch}x{args.features}): "
          f"float32 {ref32:.1f} GFLOP/s, float64 {ref64:.1f} GFLOP/s\n")
    print("| n | precision | seconds | GFLOP/s | ratio to float32 matmul | peak RSS (MiB) "
          "| RSS growth while streaming (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for n, prec in runs:
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), str(args.features),
                              str(args.batch), prec], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['n']:,} | {prec} | {r['seconds']:.2f} | {r['gflops']:.1f} | "
              f"{r['gflops'] / ref32:.2f} | {r['peak_rss_mib']:.0f} | {r['rss_growth_mib']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
