"""Weight space of a fine-tune: per adapted matrix, the spectrum of ΔW and its intruder
dimensions; per block, the same beside the representation-space rank of a compare report.

    repspace weights BASE TUNED [TUNED ...] -o OUT [--report REPORT_DIR]

``OUT`` gets ``weights.json`` (schema ``repspace.weights``), a tidy ``weights.csv`` (one row
per checkpoint, matrix and metric) and ``weights.md``, and the figure
``weight_vs_representation.{pdf,png}``: per block, the mean effective rank of ΔW and the
intruder dimensions, and -- with ``--report`` (a ``repspace compare`` folder of the same
checkpoints) -- the representation's effective-rank ratio beside them.  With ``--probe``,
also where each adapter acts (:mod:`repspace.compare.adapter_effect`): ‖Δh‖/‖h‖ per adapted
module and probe sample, and ``adapter_effect.{pdf,png}`` per block.  Formulas:
:mod:`repspace.metrics.weights`; how effective weights are read: :mod:`repspace.capture.weights`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


__all__ = ["WeightSpace", "effect_blocks", "read_report_ranks", "weight_space"]
# The measures per model pair live here; the API (settings class, one function, files through
# repspace/outputs.py) is repspace.compare.weights_api.weights_report, the command line
# repspace.compare.weights_cli.

SCHEMA = "repspace.weights"
SUMMARY_KEYS = (
    "delta_norm",
    "relative_delta",
    "delta_sigma_max",
    "delta_effective_rank",
    "delta_stable_rank",
    "delta_numerical_rank",
    "intruder_dimensions",
    "min_max_cos",
)


@dataclass
class WeightSpace:
    """``matrices``: ``{matrix name: metrics}`` of the changed linear maps; ``unchanged``:
    names whose effective weight equals the base's exactly; ``skipped``: ``{name: reason}``;
    ``blocks``: ``{block name: {metric: value}}`` aggregated over the block's matrices."""

    matrices: dict[str, dict[str, float]]
    unchanged: list[str]
    skipped: dict[str, str]
    blocks: dict[str, dict[str, float]] = field(default_factory=dict)
    effect: dict[str, dict[str, float]] = field(default_factory=dict)  # adapter_effect per module
    effect_note: str = ""
    merge: dict[str, dict] = field(default_factory=dict)  # merge fidelity per dtype (--merge-dtype)
    merge_note: str = ""


def _block_of(name: str, blocks: list[str]) -> str | None:
    for b in blocks:
        if name == b or name.startswith(b + "."):
            return b
    return None


def weight_space(
    base, tuned, k: int = 10, threshold: float = 0.5, side: str = "left", *, progress: bool = False
) -> WeightSpace:
    """:class:`WeightSpace` of ``tuned`` (an ``nn.Module``, PEFT-wrapped or not) against
    ``base``; ``progress``: a bar over the linear maps (one SVD pair each: minutes for a
    large model)."""
    from tqdm.auto import tqdm

    from repspace.capture.weights import weight_pairs
    from repspace.metrics.weights import weight_delta_summary

    matrices: dict[str, dict[str, float]] = {}
    unchanged, skipped = [], {}
    pairs = weight_pairs(base, tuned)
    for pair in tqdm(
        pairs, total=len(pairs), desc="ΔW spectra", unit="matrix", leave=False, disable=not progress
    ):
        if pair.tuned is None:
            skipped[pair.name] = pair.note
        elif np.array_equal(pair.tuned.numpy(), pair.base.numpy()):
            unchanged.append(pair.name)
        else:
            matrices[pair.name] = {
                "route": pair.route,
                **weight_delta_summary(pair.base, pair.tuned, k, threshold, side, eps=pair.eps),
            }
    block_names = _block_names(base)
    groups: dict[str, list[dict]] = {}
    for name, row in matrices.items():
        b = _block_of(name, block_names)
        if b is not None:
            groups.setdefault(b, []).append(row)
    blocks = {
        b: {
            "matrices": len(rows),
            "delta_effective_rank": float(np.nanmean([r["delta_effective_rank"] for r in rows])),
            "relative_delta": float(np.mean([r["relative_delta"] for r in rows])),
            "intruder_dimensions": int(sum(r["intruder_dimensions"] for r in rows)),
        }
        for b, rows in ((b, groups[b]) for b in block_names if b in groups)
    }
    return WeightSpace(matrices, unchanged, skipped, blocks)


def effect_blocks(ws: WeightSpace, block_names: list[str]) -> dict[str, dict[str, float]]:
    """Per block: the mean over its adapted modules of the mean, q25 and q75 of ‖Δh‖/‖h‖."""
    groups: dict[str, list[dict]] = {}
    for name, row in ws.effect.items():
        b = _block_of(name, block_names)
        if b is not None and row["n"]:
            groups.setdefault(b, []).append(row)
    return {
        b: {k: float(np.mean([r[k] for r in rows])) for k in ("mean", "q25", "q75")}
        for b, rows in ((b, groups[b]) for b in block_names if b in groups)
    }


# -- report files ------------------------------------------------------------------------------
def _csv(results: dict[str, WeightSpace]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["checkpoint", "matrix", "route", "metric", "value"])
    for ckpt, ws in results.items():
        for name, row in ws.matrices.items():
            for key in SUMMARY_KEYS:
                w.writerow([ckpt, name, row["route"], key, repr(float(row[key]))])
    return buf.getvalue()


def _markdown(results: dict[str, WeightSpace], settings: dict) -> str:
    from repspace.report.tables import md_text

    lines = [
        "# repspace weight space",
        "",
        f"Intruder dimensions: top {settings['k']} {settings['side']} singular vectors of each "
        f"tuned matrix whose best |cos| with every base singular vector is below "
        f"{settings['threshold']} (Shuttleworth et al. 2024).",
        "",
    ]
    for ckpt, ws in results.items():
        lines += [
            f"## {md_text(ckpt)}",
            "",
            f"{len(ws.matrices)} changed linear maps, {len(ws.unchanged)} unchanged, "
            f"{len(ws.skipped)} without a weight update.",
            "",
            "| block | matrices | mean erank(ΔW) | mean ‖ΔW‖/‖W₀‖ | intruder dims |",
            "|---|---:|---:|---:|---:|",
        ]
        for b, row in ws.blocks.items():
            lines.append(
                f"| {md_text(b)} | {row['matrices']} | {row['delta_effective_rank']:.3f} | "
                f"{row['relative_delta']:.3g} | {row['intruder_dimensions']} |"
            )
        for name, why in ws.skipped.items():
            lines.append(f"\n- `{md_text(name)}`: {md_text(why)}")
        if ws.effect:
            lines += [
                "",
                "Where the adapter acts (‖Δh‖ / ‖h‖ per probe sample):",
                "",
                "| module | mean | q05 | median | q95 | samples |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for name, e in ws.effect.items():
                lines.append(
                    f"| {md_text(name)} | {e['mean']:.3g} | {e['q05']:.3g} | {e['q50']:.3g} | "
                    f"{e['q95']:.3g} | {e['n']} |"
                )
        elif ws.effect_note:
            lines += ["", md_text(ws.effect_note)]
        if ws.merge:
            from repspace.compare.merge_fidelity import markdown as merge_markdown

            lines += merge_markdown(ws.merge)
        elif ws.merge_note:
            lines += ["", f"Merge fidelity: {md_text(ws.merge_note)}"]
        lines.append("")
    return "\n".join(lines)


def read_report_ranks(report_dir: Path) -> dict[str, dict[str, float]]:
    """``{checkpoint: {layer: effective-rank ratio tuned/base}}`` from a compare report's
    ``report.json``, read and checked before any model is loaded: a file that is not JSON, not
    a compare report or holds rows of the wrong types is a one-line error naming it."""
    import math

    path = report_dir / "report.json"
    where = f"--report {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(
            f"{where}: not a readable report ({exc}); give the folder `repspace compare -o` wrote"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != "repspace.report":
        raise ValueError(
            f'{where}: not a repspace compare report (no "schema": '
            '"repspace.report"); give the folder `repspace compare -o` wrote'
        )
    rows = data.get("results", [])
    if not isinstance(rows, list):
        raise ValueError(
            f"{where}: 'results' must be a list of rows; got "
            f"{type(rows).__name__}: the file is damaged, rerun repspace compare"
        )
    out: dict[str, dict[str, float]] = {}
    for i, r in enumerate(rows):
        m = r.get("metrics") if isinstance(r, dict) else None
        if (
            not isinstance(m, dict)
            or not isinstance(r.get("checkpoint"), str)
            or not isinstance(r.get("layer"), str)
        ):
            raise ValueError(
                f"{where}: results[{i}] is not a row with a checkpoint, a layer and "
                "metrics: the file is damaged, rerun repspace compare"
            )
        base, tuned = m.get("effective_rank_base"), m.get("effective_rank_tuned")
        if base is None or tuned is None:
            continue
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (base, tuned)):
            raise ValueError(
                f"{where}: results[{i}] has a non-numeric effective rank "
                f"({base!r}, {tuned!r}): the file is damaged, rerun repspace compare"
            )
        if base and math.isfinite(base) and math.isfinite(tuned):
            out.setdefault(r["checkpoint"], {})[r["layer"]] = tuned / base
    return out


def _representation_ranks(
    ranks: dict[str, dict[str, float]] | None, blocks: list[str]
) -> dict[str, dict[str, float]]:
    """The ratios of :func:`read_report_ranks` at ``blocks``."""
    return {
        c: {layer: v for layer, v in per.items() if layer in blocks}
        for c, per in (ranks or {}).items()
    }


def _is_weights_folder(path: Path) -> bool:
    from repspace.outputs import has_json_schema

    return has_json_schema(path, "weights.json", SCHEMA)


def _block_names(model) -> list[str]:
    from repspace.capture.presets import block_lists

    return [b for _, names in block_lists(model) for b in names]


def _processor(base, ck, probe):
    """The processor the probe inputs are built with (the base's, else the tuned one's), both
    checkpoints' own tokenizers checked to agree with it on the probe texts."""
    from repspace.compare.same_inputs import check_same_tokens
    from repspace.probe import model_modalities
    from repspace.probe.processors import choose_processor

    modalities = model_modalities(base.model)
    processor = choose_processor(
        [(base.spec, base.processor), (ck.spec, ck.processor)], modalities, probe.texts
    )
    check_same_tokens(
        processor,
        [
            (f"base checkpoint {base.spec}", base.processor),
            (f"tuned checkpoint {ck.spec}", ck.processor),
        ],
        modalities,
        probe.texts,
    )
    return processor
