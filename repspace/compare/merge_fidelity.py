"""Merge fidelity: what merging a PEFT adapter into its base in a low-precision dtype destroys.

Users ship adapters merged: ``model.to(dtype)`` then ``merge_and_unload()``.  In bfloat16
(8 bits of mantissa) an update much smaller than the weight it is added to rounds away,
silently.  For a PEFT model (float32, unmerged: the reference) and a merge dtype:

**Per adapted linear map** (W₀ the base weight, W = W₀ + ΔW the unmerged effective weight,
probed in float64 as in :mod:`repspace.capture.weights`, W_m the merged weight as stored,
rd(·) rounding to the merge dtype):

| key | formula |
|---|---|
| ``delta_norm`` | ‖ΔW‖_F |
| ``merge_error`` | ‖W_m − (W₀ + ΔW)‖_F / ‖ΔW‖_F: the merged weight's error in units of the update |
| ``update_error`` | ‖(W_m − rd(W₀)) − ΔW‖_F / ‖ΔW‖_F: the part of the update that did not survive on top of the rounded base (what the merge itself destroyed, not the base's own rounding) |
| ``base_rounding`` | ‖rd(W₀) − W₀‖_F / ‖ΔW‖_F: the base's own rounding against the update |
| ``absorbed_fraction`` | fraction of the entries with ΔW ≠ 0 where W_m = rd(W₀): the update rounded away entirely |

**Per layer** (the compare machinery, :func:`repspace.compare.compare_models`): the
unmerged float32 model on the base side, the merged model on the tuned side, its weights
upcast to float32 for the forward, so the drift is that of the merged *weights* alone, not
of low-precision arithmetic (which would affect an unmerged model in that dtype as much):
linear CKA and the relative shift ‖y − x‖ / ‖x‖ of the pooled features (mean, median).
As a control, ``cast_linear_cka`` / ``cast_relative_shift_mean``: the *unmerged* model with
all its weights (base and adapter) rounded to the dtype, against the same reference -- the
drift that storing the model in that dtype causes anyway; what the merge adds is the
difference.

A float32 merge is faithful to round-off (relative shift ~1e-7); a bfloat16 merge of a
small update is not.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = [
    "MERGE_DTYPES",
    "MergeFidelity",
    "merged_copy",
    "merge_matrix_errors",
    "merge_fidelity",
    "parse_merge_dtypes",
    "can_merge",
]

MERGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LAYER_METRICS = ("linear_cka", "relative_shift_mean", "relative_shift_q50")


def parse_merge_dtypes(text: str) -> list[str]:
    """``"bfloat16,float16"`` → ``["bfloat16", "float16"]``; unknown names are a one-line error."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [n for n in names if n not in MERGE_DTYPES]
    if not names or bad:
        raise ValueError(
            f"--merge-dtype: {', '.join(map(repr, bad)) or 'nothing given'}; give "
            f"comma-separated dtypes from {', '.join(MERGE_DTYPES)}"
        )
    return list(dict.fromkeys(names))


def can_merge(model: nn.Module) -> str:
    """``""`` when ``model`` is a PEFT model whose adapter can be merged, else why not."""
    from repspace.compare.adapter_effect import adapted_modules

    if not callable(getattr(model, "merge_and_unload", None)):
        return (
            "not a PEFT model with a mergeable adapter (a full fine-tune, a repspace run or "
            "prompt learning): nothing to merge"
        )
    if not adapted_modules(model):
        return "no adapted modules (prompt learning or merged weights): nothing to merge"
    return ""


def merged_copy(model: nn.Module, dtype: str | torch.dtype) -> nn.Module:
    """A copy of PEFT ``model`` cast to ``dtype`` and merged, as users do:
    ``model.to(dtype).merge_and_unload()`` (``model`` itself is untouched)."""
    dt = MERGE_DTYPES[dtype] if isinstance(dtype, str) else dtype
    why = can_merge(model)
    if why:
        raise ValueError(f"cannot merge: {why}")
    twin = copy.deepcopy(model).to(dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft warns about merging in low precision: measured here
        return twin.merge_and_unload().eval()


def merge_matrix_errors(unmerged: nn.Module, merged: nn.Module) -> dict[str, dict[str, float]]:
    """Per adapted linear map of ``unmerged`` (a PEFT model), the errors of the module doc."""
    from repspace.capture.weights import linear_weight, weight_pairs
    from repspace.compare.adapter_effect import adapted_modules

    wrappers = {
        n: m
        for n, m in adapted_modules(unmerged).items()
        if linear_weight(m.base_layer) is not None
    }
    out: dict[str, dict[str, float]] = {}
    for pair in weight_pairs(merged, unmerged, names=list(wrappers)):
        if pair.tuned is None:
            continue
        w0_stored = linear_weight(wrappers[pair.name].base_layer)
        w0 = w0_stored.double().cpu()
        merged_dtype = linear_weight(canonical(merged)[pair.name]).dtype
        w0r = w0_stored.to(merged_dtype).double().cpu()
        wm, w = pair.base, pair.tuned  # merged as stored; W₀ + ΔW (float64 probe)
        delta = w - w0
        dn = float(torch.linalg.norm(delta))
        nz = delta != 0
        absorbed = (
            float(((wm == w0r) & nz).sum()) / max(int(nz.sum()), 1) if bool(nz.any()) else math.nan
        )
        rel = (lambda v: float(torch.linalg.norm(v)) / dn) if dn > 0 else (lambda v: math.nan)
        out[pair.name] = {
            "delta_norm": dn,
            "merge_error": rel(wm - w),
            "update_error": rel((wm - w0r) - delta),
            "base_rounding": rel(w0r - w0),
            "absorbed_fraction": absorbed,
        }
    return out


def canonical(model: nn.Module) -> dict[str, nn.Module]:
    from repspace.capture.model_view import model_view

    return dict(model_view(model).modules)


@dataclass
class MergeFidelity:
    """One merge dtype: ``layers`` ``{layer: {linear_cka, relative_shift_mean, relative_shift_q50}}``,
    ``matrices`` ``{matrix: errors}`` and ``summary`` (worst / median over layers and matrices)."""

    dtype: str
    layers: dict[str, dict[str, float]]
    matrices: dict[str, dict[str, float]]
    summary: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "layers": self.layers,
            "matrices": self.matrices,
            "summary": self.summary,
        }


def _summary(layers: dict, matrices: dict) -> dict[str, float]:
    def agg(fn, rows, key):
        vals = np.array([r[key] for r in rows.values() if math.isfinite(r.get(key, math.nan))])
        return float(fn(vals)) if vals.size else math.nan

    return {
        "min_linear_cka": agg(np.min, layers, "linear_cka"),
        "max_relative_shift": agg(np.max, layers, "relative_shift_mean"),
        "median_merge_error": agg(np.median, matrices, "merge_error"),
        "max_merge_error": agg(np.max, matrices, "merge_error"),
        "median_update_error": agg(np.median, matrices, "update_error"),
        "mean_absorbed_fraction": agg(np.mean, matrices, "absorbed_fraction"),
    }


def _overflow(model: nn.Module, dtype: str, what: str, label: str | None) -> None:
    """A one-line error naming ``--merge-dtype`` when ``model`` (merged or cast to ``dtype``)
    holds weights beyond the dtype's range: its numbers would be NaN / inf, which says nothing
    about merging (and nothing about the probe data)."""
    bad = [
        (n, int((~torch.isfinite(p)).sum()))
        for n, p in model.named_parameters()
        if p.is_floating_point() and not bool(torch.isfinite(p).all())
    ]
    if not bad:
        return
    total = sum(k for _, k in bad)
    limit = float(torch.finfo(MERGE_DTYPES[dtype]).max)
    more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
    raise ValueError(
        f"--merge-dtype {dtype}: {what.format(of=f' of {label}' if label else '')} in {dtype} "
        "overflows: "
        f"{total} weight(s) beyond {dtype}'s range (±{limit:.5g}) in {bad[0][0]}{more}, so the "
        f"merged model computes inf / NaN; its merge fidelity cannot be measured in {dtype}: "
        "use --merge-dtype bfloat16 (float32's range) or float32"
    )


def merge_fidelity(
    model: nn.Module,
    batches_fn: Callable,
    dtypes: Sequence[str] = ("bfloat16",),
    *,
    layers="blocks",
    pooling: str = "mean",
    batch_size: int = 16,
    device: str | None = None,
    progress: bool = False,
    label: str | None = None,
) -> dict[str, MergeFidelity]:
    """Merge fidelity of PEFT ``model`` (unmerged, float32) for each of ``dtypes``.

    ``batches_fn()`` yields fresh input batches for the model (as for
    :func:`repspace.compare.compare_models`).  Returns ``{dtype: MergeFidelity}``.
    ``label``: the checkpoint as the user named it, for messages.  A dtype whose range the
    merged (or merely cast) weights exceed is a one-line error naming ``--merge-dtype``.
    """
    from repspace.checkpoints import LoadedCheckpoint
    from repspace.compare.engine import compare_models

    why = can_merge(model)
    if why:
        raise ValueError(f"merge fidelity: {why}")
    dtypes = parse_merge_dtypes(",".join(dtypes))
    reference = copy.deepcopy(model).float().eval()
    out: dict[str, MergeFidelity] = {}
    for name in dtypes:
        merged = merged_copy(reference, name)
        _overflow(merged, name, "merging the adapter{of} into its base", label)
        matrices = merge_matrix_errors(reference, merged)
        upcast = copy.deepcopy(merged).float().eval()
        del merged
        # control: the unmerged model with its weights rounded to the dtype (no merge)
        cast = copy.deepcopy(reference).to(MERGE_DTYPES[name])
        _overflow(cast, name, "casting the unmerged model{of}", label)
        cast = cast.float().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a faithful merge may give bit-identical early layers
            res = compare_models(
                LoadedCheckpoint("unmerged", "unmerged (float32)", "peft", reference),
                [
                    LoadedCheckpoint(f"merged-{name}", f"merged-{name}", "hf", upcast),
                    LoadedCheckpoint(f"cast-{name}", f"cast-{name}", "peft", cast),
                ],
                batches_fn,
                layers=layers,
                pooling=pooling,
                metrics=list(LAYER_METRICS),
                batch_size=batch_size,
                device=device,
                sample_rows=0,
                embedding="none",
                progress=progress,
            )
        rows, control = (res.metrics[n] for n in res.tuned_names)
        per_layer = {
            layer: {
                **{k: float(rows[layer].get(k, math.nan)) for k in LAYER_METRICS},
                **{f"cast_{k}": float(control[layer].get(k, math.nan)) for k in LAYER_METRICS[:2]},
            }
            for layer in res.layers
        }
        out[name] = MergeFidelity(name, per_layer, matrices, _summary(per_layer, matrices))
        del upcast, cast
    return out


# -- report pieces for `repspace weights --merge-dtype` ------------------------------------------
def markdown(fid: dict[str, dict]) -> list[str]:
    """Markdown lines for one checkpoint's ``{dtype: MergeFidelity.as_dict()}``."""
    from repspace.report.tables import md_text

    lines = [
        "",
        "Merge fidelity (merged in the dtype, run in float32, against the unmerged "
        "float32 model; `cast`: the unmerged model with its weights rounded, no merge):",
        "",
        "| dtype | layer | linear CKA | ‖Δy‖/‖y‖ mean | cast: ‖Δy‖/‖y‖ |",
        "|---|---|---:|---:|---:|",
    ]
    for dtype, f in fid.items():
        for layer, r in f["layers"].items():
            lines.append(
                f"| {dtype} | {md_text(layer)} | {r['linear_cka']:.9f} | "
                f"{r['relative_shift_mean']:.3g} | {r['cast_relative_shift_mean']:.3g} |"
            )
    lines += [
        "",
        "| dtype | median ‖W_m − W‖/‖ΔW‖ | max | median update lost | entries of ΔW rounded away |",
        "|---|---:|---:|---:|---:|",
    ]
    for dtype, f in fid.items():
        s = f["summary"]
        lines.append(
            f"| {dtype} | {s['median_merge_error']:.3g} | {s['max_merge_error']:.3g} | "
            f"{s['median_update_error']:.3g} | {s['mean_absorbed_fraction']:.2%} |"
        )
    return lines
