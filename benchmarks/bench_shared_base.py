"""k tuned checkpoints against one base: base statistics shared (one base Gram per layer) vs
one accumulator per pair (k base Grams), on the statistics alone (no model forwards).

Rows: n float32 rows of width p per layer for the base and k tuned sides, fed as
:class:`CapturedBatch` objects in batches of 256 rows, buffered to 2048 rows (the compare
defaults).  Reference: k independent pair sinks, each accumulating the base itself (what
compare did before the sharing).  Candidate: one :class:`FanOutSink` whose pair sinks share
the base statistics.  Interleaved pairs, median ratio reported; metrics must be identical.

    OMP_NUM_THREADS=2 python benchmarks/bench_shared_base.py [--n 16384] [--p 768] [--k 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from repspace.capture.sinks import CapturedBatch
from repspace.compare.sink import CompareSink, FanOutSink


def batches(n: int, p: int, k: int, layers: int, batch: int = 256, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, s in enumerate(range(0, n, batch)):
        b = min(batch, n - s)
        base = {f"l{j}": torch.randn(b, p, generator=g) + 3 for j in range(layers)}
        tuned = [
            {name: x + 0.1 * torch.randn(b, p, generator=g) for name, x in base.items()}
            for _ in range(k)
        ]
        out.append((i, b, base, tuned))
    return out


def separate(data, k):
    sinks = [CompareSink(max_rows=0) for _ in range(k)]
    streams = None
    for i, b, base, tuned in data:
        streams = streams or dict.fromkeys(base, "text")
        for sink, t in zip(sinks, tuned):
            sink.update(CapturedBatch({"base": base, "tuned": t}, streams, b, i))
    for sink in sinks:
        sink.finish()
    return sinks


def shared(data, k):
    fan = FanOutSink({f"t{j}": CompareSink(max_rows=0) for j in range(k)})
    streams = None
    for i, b, base, tuned in data:
        streams = streams or dict.fromkeys(base, "text")
        fan.update(
            CapturedBatch(
                {"base": base, **{f"t{j}": t for j, t in enumerate(tuned)}}, streams, b, i
            )
        )
    fan.finish()
    return list(fan.sinks.values())


def ckas(sinks) -> list[dict]:
    return [s.acc.compute(metrics=["linear_cka"]) for s in sinks]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--p", type=int, default=768)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    data = batches(args.n, args.p, args.k, args.layers)
    assert ckas(separate(data, args.k)) == ckas(shared(data, args.k)), "metrics differ"
    ratios, times = [], {"separate": [], "shared": []}
    for _ in range(args.pairs):
        t = time.perf_counter()
        separate(data, args.k)
        a = time.perf_counter() - t
        t = time.perf_counter()
        shared(data, args.k)
        b = time.perf_counter() - t
        times["separate"].append(a)
        times["shared"].append(b)
        ratios.append(b / a)
    print(
        f"# statistics of k = {args.k} tuned sides, n = {args.n}, p = {args.p}, {args.layers} layers, "
        f"{torch.get_num_threads()} threads"
    )
    print("| run | seconds (median) | time ratio to separate | identical metrics |")
    print("|---|---:|---:|---|")
    print(
        f"| separate accumulators (k base Grams) | {statistics.median(times['separate']):.2f} | 1.00 | — |"
    )
    print(
        f"| shared base statistics (1 base Gram) | {statistics.median(times['shared']):.2f} | "
        f"{statistics.median(ratios):.2f} | yes |"
    )
    print(
        f"(ideal with the Grams dominating: (k + 1 + k) / 3k = {(2 * args.k + 1) / (3 * args.k):.2f})"
    )


if __name__ == "__main__":
    main()
