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

import argparse
import csv
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


__all__ = ["WeightSpace", "weight_space", "add_weights_parser", "run_weights"]

SCHEMA = "repspace.weights"
SUMMARY_KEYS = ("delta_norm", "relative_delta", "delta_sigma_max", "delta_effective_rank",
                "delta_stable_rank", "delta_numerical_rank", "intruder_dimensions", "min_max_cos")


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


def weight_space(base, tuned, k: int = 10, threshold: float = 0.5, side: str = "left") -> WeightSpace:
    """:class:`WeightSpace` of ``tuned`` (an ``nn.Module``, PEFT-wrapped or not) against ``base``."""
    from repspace.capture.weights import weight_pairs
    from repspace.metrics.weights import weight_delta_summary

    matrices: dict[str, dict[str, float]] = {}
    unchanged, skipped = [], {}
    for pair in weight_pairs(base, tuned):
        if pair.tuned is None:
            skipped[pair.name] = pair.note
        elif np.array_equal(pair.tuned.numpy(), pair.base.numpy()):
            unchanged.append(pair.name)
        else:
            matrices[pair.name] = {"route": pair.route, **weight_delta_summary(
                pair.base, pair.tuned, k, threshold, side, eps=pair.eps)}
    block_names = _block_names(base)
    groups: dict[str, list[dict]] = {}
    for name, row in matrices.items():
        b = _block_of(name, block_names)
        if b is not None:
            groups.setdefault(b, []).append(row)
    blocks = {b: {"matrices": len(rows),
                  "delta_effective_rank": float(np.nanmean([r["delta_effective_rank"] for r in rows])),
                  "relative_delta": float(np.mean([r["relative_delta"] for r in rows])),
                  "intruder_dimensions": int(sum(r["intruder_dimensions"] for r in rows))}
              for b, rows in ((b, groups[b]) for b in block_names if b in groups)}
    return WeightSpace(matrices, unchanged, skipped, blocks)


def effect_blocks(ws: WeightSpace, block_names: list[str]) -> dict[str, dict[str, float]]:
    """Per block: the mean over its adapted modules of the mean, q25 and q75 of ‖Δh‖/‖h‖."""
    groups: dict[str, list[dict]] = {}
    for name, row in ws.effect.items():
        b = _block_of(name, block_names)
        if b is not None and row["n"]:
            groups.setdefault(b, []).append(row)
    return {b: {k: float(np.mean([r[k] for r in rows])) for k in ("mean", "q25", "q75")}
            for b, rows in ((b, groups[b]) for b in block_names if b in groups)}


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

    lines = ["# repspace weight space", "",
             f"Intruder dimensions: top {settings['k']} {settings['side']} singular vectors of each "
             f"tuned matrix whose best |cos| with every base singular vector is below "
             f"{settings['threshold']} (Shuttleworth et al. 2024).", ""]
    for ckpt, ws in results.items():
        lines += [f"## {md_text(ckpt)}", "",
                  f"{len(ws.matrices)} changed linear maps, {len(ws.unchanged)} unchanged, "
                  f"{len(ws.skipped)} without a weight update.", "",
                  "| block | matrices | mean erank(ΔW) | mean ‖ΔW‖/‖W₀‖ | intruder dims |",
                  "|---|---:|---:|---:|---:|"]
        for b, row in ws.blocks.items():
            lines.append(f"| {md_text(b)} | {row['matrices']} | {row['delta_effective_rank']:.3f} | "
                         f"{row['relative_delta']:.3g} | {row['intruder_dimensions']} |")
        for name, why in ws.skipped.items():
            lines.append(f"\n- `{md_text(name)}`: {md_text(why)}")
        if ws.effect:
            lines += ["", "Where the adapter acts (‖Δh‖ / ‖h‖ per probe sample):", "",
                      "| module | mean | q05 | median | q95 | samples |", "|---|---:|---:|---:|---:|---:|"]
            for name, e in ws.effect.items():
                lines.append(f"| {md_text(name)} | {e['mean']:.3g} | {e['q05']:.3g} | {e['q50']:.3g} | "
                             f"{e['q95']:.3g} | {e['n']} |")
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
        raise ValueError(f"{where}: not a readable report ({exc}); give the folder `repspace "
                         "compare -o` wrote") from None
    if not isinstance(data, dict) or data.get("schema") != "repspace.report":
        raise ValueError(f"{where}: not a repspace compare report (no \"schema\": "
                         "\"repspace.report\"); give the folder `repspace compare -o` wrote")
    rows = data.get("results", [])
    if not isinstance(rows, list):
        raise ValueError(f"{where}: 'results' must be a list of rows; got "
                         f"{type(rows).__name__}: the file is damaged, rerun repspace compare")
    out: dict[str, dict[str, float]] = {}
    for i, r in enumerate(rows):
        m = r.get("metrics") if isinstance(r, dict) else None
        if not isinstance(m, dict) or not isinstance(r.get("checkpoint"), str) \
                or not isinstance(r.get("layer"), str):
            raise ValueError(f"{where}: results[{i}] is not a row with a checkpoint, a layer and "
                             "metrics: the file is damaged, rerun repspace compare")
        base, tuned = m.get("effective_rank_base"), m.get("effective_rank_tuned")
        if base is None or tuned is None:
            continue
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (base, tuned)):
            raise ValueError(f"{where}: results[{i}] has a non-numeric effective rank "
                             f"({base!r}, {tuned!r}): the file is damaged, rerun repspace compare")
        if base and math.isfinite(base) and math.isfinite(tuned):
            out.setdefault(r["checkpoint"], {})[r["layer"]] = tuned / base
    return out


def _representation_ranks(ranks: dict[str, dict[str, float]] | None,
                          blocks: list[str]) -> dict[str, dict[str, float]]:
    """The ratios of :func:`read_report_ranks` at ``blocks``."""
    return {c: {layer: v for layer, v in per.items() if layer in blocks}
            for c, per in (ranks or {}).items()}


# -- command line --------------------------------------------------------------------------------
def add_weights_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "weights", help="weight-space analysis of fine-tunes: ΔW spectrum, rank, intruder dimensions",
        description="For every linear map a fine-tune changed: singular values, effective / stable "
                    "rank and relative size of ΔW, and intruder dimensions (Shuttleworth et al. "
                    "2024); per block beside the representation rank of a compare report.")
    p.add_argument("base", help="base checkpoint (folder, hub id, 'embedded')")
    p.add_argument("tuned", nargs="+", help="fine-tuned checkpoints: PEFT adapter folders, full "
                   "fine-tunes, repspace run folders")
    p.add_argument("-o", "--output", required=True, help="new folder for the results")
    p.add_argument("--report", default=None, help="a `repspace compare` folder of the same checkpoints "
                   "(adds the representation's effective-rank ratio to the figure)")
    p.add_argument("--top-k", type=int, default=10, help="tuned singular vectors examined for "
                   "intruder dimensions (default 10)")
    p.add_argument("--threshold", type=float, default=0.5, help="intruder if the best |cos| with "
                   "every base singular vector is below this (default 0.5)")
    p.add_argument("--side", choices=["left", "right"], default="left",
                   help="singular vectors of the output space (left, as in the paper) or input space")
    p.add_argument("--probe", default=None, help="also measure where each adapter acts: "
                   "‖Δh‖/‖h‖ per adapted module on this probe ('builtin', a .txt/.jsonl/.csv "
                   "file or an image folder; see `repspace compare --probe`)")
    p.add_argument("--num-samples", type=int, default=128, help="probe samples for --probe and --merge-dtype (default 128)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size for --probe (default 16)")
    p.add_argument("--merge-dtype", default=None, metavar="DTYPES",
                   help="also measure merge fidelity of PEFT adapters: merge into the base in each "
                        "of these comma-separated dtypes (float32, float16, bfloat16; as "
                        "model.to(dtype).merge_and_unload()) and compare with the unmerged float32 "
                        "model per layer (on --probe, default builtin) and per matrix")
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights folder")
    return p


def _is_weights_folder(path: Path) -> bool:
    from repspace.outputs import has_json_schema

    return has_json_schema(path, "weights.json", SCHEMA)


def run_weights(args) -> int:
    from repspace.checkpoints import load_checkpoint, resolve_spec
    from repspace.outputs import apply_umask, check_output, publish, staging_dir

    if isinstance(args.top_k, bool) or args.top_k < 1:
        raise ValueError(f"--top-k must be a positive integer; got {args.top_k}")
    if not 0.0 < args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in (0, 1]; got {args.threshold}")
    merge_dtypes = None
    if getattr(args, "merge_dtype", None) is not None:
        from repspace.compare.merge_fidelity import parse_merge_dtypes

        merge_dtypes = parse_merge_dtypes(args.merge_dtype)
    report_dir = Path(args.report) if args.report else None
    if report_dir is not None and not (report_dir / "report.json").is_file():
        raise ValueError(f"--report {args.report}: no report.json there; give a `repspace compare` "
                         "output folder")
    ranks = read_report_ranks(report_dir) if report_dir is not None else None  # before loading
    for opt in ("num_samples", "batch_size"):
        if getattr(args, opt) < 1:
            raise ValueError(f"--{opt.replace('_', '-')} must be a positive integer; got {getattr(args, opt)}")
    inputs = [("base checkpoint", resolve_spec(args.base))]
    inputs += [("tuned checkpoint", resolve_spec(t)) for t in args.tuned]
    if args.probe not in (None, "builtin", "general"):  # generated in memory: no file
        inputs.append(("probe data", args.probe))
    from repspace.checkpoints import preflight_checkpoints

    preflight_checkpoints([args.base, *args.tuned], chains=[args.base])
    out = check_output(args.output, overwrite=args.overwrite, inputs=inputs,
                       is_ours=_is_weights_folder, kind="repspace weights")
    probe = None
    if args.probe is not None or merge_dtypes:
        from repspace.probe import load_probe

        probe = load_probe(args.probe or "builtin", num_samples=args.num_samples,
                           seed=0)  # before any model
    base = load_checkpoint(args.base)
    results: dict[str, WeightSpace] = {}
    for spec in args.tuned:
        ck = load_checkpoint(spec, base=args.base)
        name = ck.name
        while name in results:
            name += "'"
        try:
            ws = results[name] = weight_space(base.model, ck.model, args.top_k, args.threshold,
                                              args.side)
        except ValueError as exc:  # another architecture or width: say which pair, and the fix
            raise ValueError(f"tuned checkpoint {spec} against base {args.base}: {exc}; the "
                             "weight space compares a fine-tune with the model it was "
                             "fine-tuned from (same architecture and widths): give that base") \
                from None
        if not ws.matrices and not ws.skipped:
            raise ValueError(f"tuned checkpoint {spec}: no linear map differs from the base; is it "
                             "the base itself, or an adapter that is not active?")
        if probe is not None and args.probe is not None:
            _measure_effect(ws, base, ck, probe, args.batch_size)
        if merge_dtypes:
            _measure_merge(ws, base, ck, probe, args.batch_size, merge_dtypes)
    blocks = list(dict.fromkeys(b for ws in results.values() for b in ws.blocks))
    block_names = _block_names(base.model)
    effects = {c: effect_blocks(ws, block_names) for c, ws in results.items() if ws.effect}
    settings = {"k": args.top_k, "threshold": args.threshold, "side": args.side,
                "base": args.base, "tuned": list(args.tuned), "report": args.report,
                "probe": None if probe is None else probe.describe(),
                "num_samples": None if probe is None else len(probe), "merge_dtypes": merge_dtypes}
    tmp = staging_dir(out, "weights")
    try:
        (tmp / "weights.json").write_text(json.dumps({
            "schema": SCHEMA, "schema_version": 1, "settings": settings,
            "checkpoints": {c: {"matrices": ws.matrices, "unchanged": ws.unchanged,
                                "skipped": ws.skipped, "blocks": ws.blocks,
                                "adapter_effect": ws.effect, "adapter_effect_blocks": effects.get(c, {}),
                                "adapter_effect_note": ws.effect_note,
                                "merge_fidelity": ws.merge, "merge_fidelity_note": ws.merge_note}
                            for c, ws in results.items()}}, indent=2, allow_nan=True), encoding="utf-8")
        (tmp / "weights.csv").write_text(_csv(results), encoding="utf-8")
        (tmp / "weights.md").write_text(_markdown(results, settings), encoding="utf-8")
        from repspace.report.weight_figures import (plot_adapter_effect, plot_merge_fidelity,
                                                   plot_weight_vs_representation)

        if blocks:
            plot_weight_vs_representation({c: ws.blocks for c, ws in results.items()},
                                          _representation_ranks(ranks, blocks),
                                          tmp / "weight_vs_representation")
        if effects:
            plot_adapter_effect(effects, tmp / "adapter_effect")
        merges = {c: ws.merge for c, ws in results.items() if ws.merge}
        if merges:
            plot_merge_fidelity(merges, tmp / "merge_fidelity")
        apply_umask(tmp)
        publish(tmp, out, overwrite=args.overwrite, is_ours=_is_weights_folder, kind="repspace weights")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for ckpt, ws in results.items():
        intr = sum(r["intruder_dimensions"] for r in ws.matrices.values())
        print(f"{ckpt}: {len(ws.matrices)} changed linear maps, {intr} intruder dimensions "
              f"(top {args.top_k}, |cos| < {args.threshold})")
        for dtype, f in ws.merge.items():
            s = f["summary"]
            print(f"{ckpt}: merged in {dtype}: min CKA {s['min_linear_cka']:.9f}, max relative shift "
                  f"{s['max_relative_shift']:.3g}, median ‖W_m − W‖/‖ΔW‖ {s['median_merge_error']:.3g}")
        if ws.merge_note:
            print(f"{ckpt}: merge fidelity: {ws.merge_note}")
    print(f"wrote {out}/weights.json, weights.csv, weights.md" +
          (", weight_vs_representation.pdf/png" if blocks else "") +
          (", adapter_effect.pdf/png" if effects else "") +
          (", merge_fidelity.pdf/png" if merges else ""))
    return 0


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
    processor = choose_processor([(base.spec, base.processor), (ck.spec, ck.processor)],
                                 modalities, probe.texts)
    check_same_tokens(processor, [(f"base checkpoint {base.spec}", base.processor),
                                  (f"tuned checkpoint {ck.spec}", ck.processor)], modalities,
                      probe.texts)
    return processor


def _measure_effect(ws: WeightSpace, base, ck, probe, batch_size: int) -> None:
    """Fill ``ws.effect`` (‖Δh‖/‖h‖ per adapted module of ``ck``) on ``probe``, or say why not."""
    from repspace.compare.adapter_effect import adapted_modules, adapter_effect
    from repspace.probe import make_batches

    if not adapted_modules(ck.model):
        ws.effect_note = ("no adapter modules (e.g. a full fine-tune or merged weights): the "
                          "adapter's share of each output is not defined; see the ΔW table")
        return
    processor = _processor(base, ck, probe)
    ws.effect = adapter_effect(ck.model, make_batches(probe, base.model, processor, batch_size=batch_size))


def _measure_merge(ws: WeightSpace, base, ck, probe, batch_size: int, dtypes: list[str]) -> None:
    """Fill ``ws.merge`` (merge fidelity per dtype of ``ck``'s adapter) on ``probe``, or say why not."""
    from repspace.compare.merge_fidelity import can_merge, merge_fidelity
    from repspace.probe import make_batches

    why = can_merge(ck.model)
    if why:
        ws.merge_note = why
        return
    processor = _processor(base, ck, probe)
    fid = merge_fidelity(ck.model, lambda: make_batches(probe, base.model, processor,
                                                        batch_size=batch_size), dtypes,
                         batch_size=batch_size, label=ck.spec)
    ws.merge = {d: f.as_dict() for d, f in fid.items()}
