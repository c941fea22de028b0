"""`repspace demo`: the main job on the embedded default.

Until the training and study runner land, the demo exercises the metrics engine end to
end on deterministic synthetic representations that mimic the PT-PEFT paper's finding:
a "collapsing" update (a low-rank update that dominates a few directions, as LoRA and
adapters are reported to do) versus a "preserving" one (a small rotation plus noise,
as prefix-tuning is reported to do).  It streams both through the same accumulator a
capture run would use and prints the per-layer table.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from repspace.statistics import LayerwiseMoments

METRICS = ("linear_cka", "linear_cka_debiased", "effective_rank_base", "effective_rank_tuned",
           "frechet_distance", "cosine_similarity_mean")


def synthetic_layers(n: int, p: int, layers: int, seed: int):
    """Base features with a power-law spectrum and two tuned variants, per layer."""
    rng = np.random.default_rng(seed)
    decay = np.arange(1, p + 1, dtype=np.float64) ** -0.5
    base, collapse, preserve = {}, {}, {}
    for layer in range(layers):
        name = f"encoder.layer.{layer}"
        x = rng.standard_normal((n, p)) * decay @ np.linalg.qr(rng.standard_normal((p, p)))[0]
        u = rng.standard_normal((p, 2))
        strength = 0.5 * (layer + 1)  # later layers move more
        collapse[name] = x + strength * (x @ u) @ u.T / p ** 0.5
        angle = 0.02 * (layer + 1)
        rot = np.eye(p)
        rot[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        preserve[name] = x @ rot + 0.01 * rng.standard_normal((n, p))
        base[name] = x
    return base, {"collapsing update (LoRA-like)": collapse,
                  "preserving update (prefix-like)": preserve}


def run_demo(n: int = 4096, p: int = 64, layers: int = 4, batch_size: int = 512,
             seed: int = 0) -> dict:
    base, tuned_sets = synthetic_layers(n, p, layers, seed)
    results = {}
    for label, tuned in tuned_sets.items():
        acc = LayerwiseMoments(precision="float64")
        for start in tqdm(range(0, n, batch_size), desc=label, leave=False):
            acc.update({k: torch.from_numpy(v[start:start + batch_size]) for k, v in base.items()},
                       {k: torch.from_numpy(v[start:start + batch_size]) for k, v in tuned.items()})
        results[label] = {layer: row for (layer, _), row in acc.compute().items()}
    return results


def format_table(results: dict) -> str:
    lines = []
    for label, rows in results.items():
        lines.append(f"\n{label}")
        lines.append("  " + "layer".ljust(18) + "".join(m.rjust(24) for m in METRICS))
        for layer, row in rows.items():
            lines.append("  " + layer.ljust(18) + "".join(f"{row[m]:24.4f}" for m in METRICS))
    return "\n".join(lines)


def add_parser(sub):
    p = sub.add_parser("demo", help="run the main job on the embedded default")
    p.add_argument("--num-samples", type=int, default=4096, help="probe samples (default 4096)")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args) -> int:
    results = run_demo(n=args.num_samples, seed=args.seed)
    print("repspace demo: synthetic base vs two kinds of update, streamed through the "
          "exact metrics engine")
    print(format_table(results))
    print("\nThe collapsing update lowers the effective rank layer by layer; the preserving "
          "one keeps CKA near 1 and the effective rank unchanged.")
    return 0
