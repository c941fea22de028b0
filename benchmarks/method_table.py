"""Every method fine-tuned on the embedded model for built-in VQA (and captioning on the
shifted domain), with a fixed CPU budget: the table in docs/methods.md.

    OMP_NUM_THREADS=1 python benchmarks/method_table.py --out /tmp/method_table [--task vqa]

Each run is a normal `repspace train` run folder under --out (re-running skips finished
runs: the trainer returns the stored result).  Prints a markdown table and writes
table.md / table.json there.  Also reports the majority-answer baseline per question type
(the accuracy of always answering the most common train answer of that type), which is
what "non-trivial accuracy" is measured against.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

# method -> (steps, lr, options); budgets are each family's defaults unless given.
RECIPES = {
    "full": (1000, 5e-4, {}),
    "lora": (2000, 1e-2, {}),
    "adapter": (2000, 5e-3, {}),
    "ia3": (2000, 1e-2, {}),
    "prefix": (2000, 1e-2, {"reparameterize": True}),
    "prompt": (2000, 3e-2, {"num_virtual_tokens": 40, "init": "random"}),
    "adalink": (2000, 1e-2, {}),
    "pt_lora": (2000, 1e-2, {}),
    "pt_adapter": (2000, 5e-3, {}),
}


def majority_baseline(seed: int = 0, n_train: int = 2000, n_eval: int = 200) -> dict:
    from repspace.data import ShapesWorld
    from repspace.evaluation import vqa_accuracy

    w = ShapesWorld(seed=seed, n_train=n_train, n_val=n_eval, n_test=n_eval)
    train, test = w.vqa_dataset("train"), w.vqa_dataset("test")
    mode = {}
    for qtype in {qa.qtype for _, qa in train.items}:
        mode[qtype] = Counter(qa.answer for _, qa in train.items if qa.qtype == qtype).most_common(
            1
        )[0][0]
    preds = [mode.get(qa.qtype, "") for _, qa in test.items]
    refs = [[qa.answer] for _, qa in test.items]
    return {"vqa_accuracy": float(vqa_accuracy(preds, refs)), "answers": mode}


def _seconds(run_dir: str, measured: float) -> float:
    """Wall time of a run: measured here, or, for a finished run the trainer returned from
    its folder, the timings its train_log.jsonl recorded when it ran."""
    log = Path(run_dir) / "train_log.jsonl"
    if measured < 1.0 and log.is_file():
        for line in reversed(log.read_text().splitlines()):
            timings = json.loads(line).get("timings")
            if timings:
                return round(sum(timings.values()), 1)
    return round(measured, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="method_table")
    ap.add_argument("--task", default="vqa", choices=["vqa", "captioning"])
    ap.add_argument("--methods", nargs="*", default=list(RECIPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--base", default="embedded", help="base checkpoint (default: the embedded model)"
    )
    ap.add_argument("--zero-shot", action="store_true", help="add a row for the untrained base")
    args = ap.parse_args()

    from repspace.training import TrainConfig, evaluate_base, train

    out = Path(args.out)
    rows = []
    for method in args.methods:
        steps, lr, options = RECIPES[method]
        if args.task == "captioning":
            steps = max(steps // 3, 200)
        cfg = TrainConfig(
            base=args.base,
            method=method,
            method_options=options,
            task=args.task,
            domain="shifted" if args.task == "captioning" else "source",
            steps=steps,
            lr=lr,
            seed=args.seed,
            output_dir=str(out / f"{args.task}-{method}"),
        )
        t0 = time.perf_counter()
        res = train(cfg, progress=True)
        rows.append(
            {
                "method": method,
                "trainable_params": res.params.trainable,
                "total_params": res.params.total,
                "steps": steps,
                "lr": lr,
                "options": options,
                "seconds": _seconds(cfg.output_dir, time.perf_counter() - t0),
                "scores": res.scores,
            }
        )
    base = majority_baseline() if args.task == "vqa" else None
    if args.zero_shot:
        rows.insert(
            0,
            {
                "method": "base (no tuning)",
                "trainable_params": 0,
                "steps": 0,
                "lr": 0,
                "seconds": 0,
                "scores": evaluate_base(cfg),
            },
        )
    lines = [
        "| method | trainable params | steps | lr | wall s | "
        + (
            "VQA acc | color | count | exist | relation | shape |"
            if args.task == "vqa"
            else "CIDEr-D | BLEU-4 |"
        ),
        "|---|---:|---:|---:|---:|" + ("---:|" * (6 if args.task == "vqa" else 2)),
    ]
    for r in rows:
        s = r["scores"]
        cells = (
            [s.get("vqa_accuracy")]
            + [s.get(f"vqa_accuracy/{t}") for t in ("color", "count", "exist", "relation", "shape")]
            if args.task == "vqa"
            else [s["cider_d"], s["bleu_4"]]
        )  # a missing key: KeyError
        lines.append(
            f"| {r['method']} | {r['trainable_params']:,} | {r['steps']} | {r['lr']:g} | "
            f"{r['seconds']} | "
            + " | ".join("—" if c is None else f"{c:.3f}" for c in cells)
            + " |"
        )
    if base:
        lines.append(
            f"| majority answer per type | 0 | — | — | — | {base['vqa_accuracy']:.3f} | | | | | |"
        )
    table = "\n".join(lines)
    print(table)
    (out / f"table-{args.task}.md").write_text(table + "\n")
    (out / f"table-{args.task}.json").write_text(
        json.dumps({"rows": rows, "baseline": base}, indent=2)
    )


if __name__ == "__main__":
    main()
