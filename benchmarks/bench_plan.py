"""Wall time of `repspace compare --plan` on a 70B config, the whole command (not a test; see
docs/benchmarks.md).

Writes a Llama-3-70B-shaped ``config.json`` (hidden 8192, intermediate 28672, 64 heads, 8 KV
heads, 80 blocks, vocab 128256, bfloat16, untied; no weights) and an all-linear LoRA r = 16
``adapter_config.json`` on it, then times, each in a fresh process (``--runs`` times,
median), the commands a user types:

- ``repspace compare BASE BASE --plan``      (two full checkpoints)
- ``repspace compare ADAPTER --plan``        (the adapter, its recorded base)

and, as the reference measured in the same run, the same plan built on the meta device
(``plan_compare(..., fast=False)`` in a fresh process: torch, transformers, the model's
shapes).  Checks (exit 1 when one fails): the command's median under ``--budget`` seconds
(2 s: issue 25) and its weights estimate within 5 % of parameters × 2 bytes (the exact
count, written out by hand below).  Prints the load average before and after: on a shared
machine, read the times with it.

    python benchmarks/bench_plan.py                   # 5 runs each, about half a minute
    python benchmarks/bench_plan.py --repo /tmp/wt    # time another checkout's command
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LLAMA_70B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parameters_70b() -> int:
    """By hand: embeddings and head (untied), 80 blocks of GQA attention (k, v: 8 of 64 heads),
    SwiGLU MLP and two RMSNorms, the final norm."""
    h, i, v, kv = 8192, 28672, 128256, 8192 // 64 * 8
    return 2 * v * h + 80 * (2 * h * h + 2 * h * kv + 3 * h * i + 2 * h) + h


def write_checkpoints(root: Path) -> tuple[Path, Path]:
    base, lora = root / "llama-70b", root / "lora-r16"
    base.mkdir()
    lora.mkdir()
    (base / "config.json").write_text(json.dumps(LLAMA_70B))
    (lora / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": str(base),
                "r": 16,
                "lora_alpha": 32,
                "target_modules": ALL_LINEAR,
                "bias": "none",
            }
        )
    )
    return base, lora


def timed(argv: list[str], repo: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    run = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - started, run


META = """
import sys
from repspace.compare.plan import plan_compare
plan = plan_compare(sys.argv[1], [sys.argv[2]], available_bytes=1 << 50, fast=False)
print(plan.weights_bytes)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--budget", type=float, default=2.0, help="seconds (median, whole command)")
    ap.add_argument(
        "--repo",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the checkout whose `python -m repspace` is timed (default: this one)",
    )
    args = ap.parse_args()
    load_before = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; repo {args.repo}; load average before "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    exact = parameters_70b() * 2  # bfloat16
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        base, lora = write_checkpoints(Path(tmp))
        cases = {
            "compare BASE BASE --plan": [str(base), str(base)],
            "compare ADAPTER --plan": [str(lora)],
        }
        for name, specs in cases.items():
            argv = [sys.executable, "-m", "repspace", "compare", *specs, "--plan", "--json"]
            times = []
            for _ in range(args.runs):
                seconds, run = timed(argv, args.repo)
                if run.returncode not in (0, 2):  # 2: does not fit this machine (expected)
                    print(f"{name}: exit {run.returncode}: {run.stderr.strip()}")
                    return 1
                times.append(seconds)
            plan = json.loads(run.stdout)
            weights = plan["models"][0]["weights_bytes"]
            off = abs(weights - exact) / exact
            median = statistics.median(times)
            ok = median < args.budget and off <= 0.05
            failed |= not ok
            print(
                f"{name:28s} median {median:5.2f} s (runs {', '.join(f'{t:.2f}' for t in times)})"
                f"; base weights {weights / 2**30:.1f} GiB, {off:.1e} off parameters × 2 B"
                f" {'ok' if ok else 'FAILED'}"
            )
        meta = []
        for _ in range(max(1, args.runs // 2)):
            seconds, run = timed([sys.executable, "-c", META, str(base), str(lora)], args.repo)
            if run.returncode != 0:
                print(f"meta-device reference failed: {run.stderr.strip()[-300:]}")
                return 1
            meta.append(seconds)
        print(
            f"{'reference: meta device':28s} median {statistics.median(meta):5.2f} s (runs "
            f"{', '.join(f'{t:.2f}' for t in meta)}; plan_compare(fast=False), fresh process)"
        )
    load_after = os.getloadavg()
    print(f"load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
