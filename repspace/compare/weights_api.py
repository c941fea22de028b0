"""`repspace weights` as a function: :func:`weights_report` measures the weight space of one
or more fine-tunes against their base (:mod:`repspace.compare.weights`) and, given an
``output``, writes the folder through :mod:`repspace.outputs` (staged, published atomically).

Settings are a :class:`WeightsConfig`, checked in ``__post_init__``: a bad value is a
one-line :class:`SettingError` naming the field (``top_k``) before anything is read; the
command line (:mod:`repspace.compare.weights_cli`) renames the field to its option
(``--top-k``) in one place.  Everything that needs no model -- settings, the ``--report``
folder, the checkpoints' files and chains, the output folder, the probe -- is checked
before the first model loads.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from repspace._constraints import Interval, Options, SettingError, Types, Validated

__all__ = [
    "SettingError",
    "WeightsConfig",
    "WeightsReport",
    "summary_lines",
    "weights_report",
    "write_weights",
]


@dataclass(frozen=True)
class WeightsConfig(Validated):
    """How :func:`weights_report` measures.

    ``top_k`` tuned singular vectors examined for intruder dimensions, intruder when the
    best |cos| with every base singular vector is below ``threshold`` (0, 1], on the
    ``side`` ``"left"`` (output space, as Shuttleworth et al. 2024) or ``"right"``;
    ``report``: a ``repspace compare`` folder of the same checkpoints (its effective-rank
    ratios go beside ΔW in the figure); ``probe`` (None: none): also where each adapter acts
    on these samples; ``num_samples`` / ``batch_size`` of that probe; ``merge_dtypes``: also
    the merge fidelity of PEFT adapters in these dtypes (on ``probe``, default builtin);
    ``progress``: bars on stderr (None, the default: when stderr is a terminal).
    """

    top_k: int = 10
    threshold: float = 0.5
    side: str = "left"
    report: str | None = None
    probe: str | None = None
    num_samples: int = 128
    batch_size: int = 16
    merge_dtypes: Sequence[str] | None = None
    progress: bool | None = None

    _command: ClassVar = "weights"
    _constraints: ClassVar = {
        "top_k": [Interval(int, 1, None)],
        "threshold": [Interval(float, 0, 1, closed="right")],
        "side": [Options("left", "right")],
        "report": [Types(str, Path, name="a path"), None],
        "probe": [Types(str, Path, name="a path"), None],
        "num_samples": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "progress": [Types(bool), None],
    }

    def __post_init__(self):
        super().__post_init__()
        if self.merge_dtypes is not None:
            from repspace.compare.merge_fidelity import MERGE_DTYPES, parse_merge_dtypes

            text = (
                self.merge_dtypes
                if isinstance(self.merge_dtypes, str)
                else ",".join(map(str, self.merge_dtypes))
            )
            try:
                parsed = tuple(parse_merge_dtypes(text))
            except ValueError:
                raise SettingError(
                    "merge_dtypes",
                    self.merge_dtypes,
                    f"dtypes from {', '.join(MERGE_DTYPES)}",
                    type(self).__name__,
                ) from None
            object.__setattr__(self, "merge_dtypes", parsed)


@dataclass
class WeightsReport:
    """What :func:`weights_report` measured: ``checkpoints`` (display name → its
    :class:`~repspace.compare.weights.WeightSpace`), ``effects`` (name → per-block adapter
    effect), ``ranks`` (name → {block: representation effective-rank ratio}, from
    ``report``), the recorded ``settings`` and, once written, ``output``."""

    checkpoints: dict
    settings: dict
    effects: dict = field(default_factory=dict)
    ranks: dict = field(default_factory=dict)
    blocks: list[str] = field(default_factory=list)
    output: Path | None = None

    def to_dict(self) -> dict:
        """``weights.json``'s content (schema ``repspace.weights``)."""
        from repspace.compare.weights import SCHEMA

        return {
            "schema": SCHEMA,
            "schema_version": 1,
            "settings": self.settings,
            "checkpoints": {
                c: {
                    "matrices": ws.matrices,
                    "unchanged": ws.unchanged,
                    "skipped": ws.skipped,
                    "blocks": ws.blocks,
                    "adapter_effect": ws.effect,
                    "adapter_effect_blocks": self.effects.get(c, {}),
                    "adapter_effect_note": ws.effect_note,
                    "merge_fidelity": ws.merge,
                    "merge_fidelity_note": ws.merge_note,
                }
                for c, ws in self.checkpoints.items()
            },
        }


def _inputs(base: str, tuned: Sequence[str], s: WeightsConfig) -> list[tuple[str, str]]:
    """What this run reads (the output may not be, hold or lie inside any of them)."""
    from repspace.checkpoints import resolve_spec

    inputs = [("base checkpoint", resolve_spec(base))]
    inputs += [("tuned checkpoint", resolve_spec(t)) for t in tuned]
    if s.probe not in (None, "builtin", "general"):  # generated in memory: no file
        inputs.append(("probe data", str(s.probe)))
    return inputs


def _read_ranks(report) -> dict | None:
    """The compare report's effective-rank ratios, read and checked before any model."""
    from repspace.compare.weights import read_report_ranks

    if report is None:
        return None
    report_dir = Path(report)
    if not (report_dir / "report.json").is_file():
        raise ValueError(
            f"--report {report}: no report.json there; give a `repspace compare` output folder"
        )
    return read_report_ranks(report_dir)


def weights_report(
    base: str,
    tuned: Sequence[str],
    settings: WeightsConfig | None = None,
    *,
    output: str | Path | None = None,
    overwrite: bool = False,
    **options,
) -> WeightsReport:
    """The weight space of every ``tuned`` checkpoint against ``base`` (checkpoint specs, as
    the command line takes them); ``settings`` or its fields as keyword ``options``.

    With ``output``: also writes ``weights.json``, ``weights.csv``, ``weights.md`` and the
    figures there (:func:`write_weights`); the folder is checked before any model loads.
    """
    from repspace.checkpoints import load_checkpoint, preflight_checkpoints
    from repspace.compare.names import display_name
    from repspace.compare.weights import (
        WeightSpace,
        _block_names,
        _representation_ranks,
        effect_blocks,
        weight_space,
    )
    from repspace.outputs import check_output
    from repspace.training import runs as _runs  # noqa: F401 - registers the run-folder loaders

    s = WeightsConfig.from_options(**options) if settings is None else replace(settings, **options)
    base, tuned = str(base), [str(t) for t in tuned]
    if not tuned:
        raise ValueError("give at least one tuned checkpoint to compare with the base")
    ranks = _read_ranks(s.report)  # before loading
    preflight_checkpoints([base, *tuned], chains=[base])
    if output is not None:
        from repspace.compare.weights import _is_weights_folder

        check_output(
            output,
            overwrite=overwrite,
            inputs=_inputs(base, tuned, s),
            is_ours=_is_weights_folder,
            kind="repspace weights",
        )
    probe = None
    if s.probe is not None or s.merge_dtypes:
        from repspace.probe import load_probe

        probe = load_probe(str(s.probe or "builtin"), num_samples=s.num_samples, seed=0)
    from tqdm.auto import tqdm

    if s.progress is None:
        s = replace(s, progress=sys.stderr.isatty())
    base_ck = load_checkpoint(base)
    results: dict[str, WeightSpace] = {}
    with tqdm(tuned, desc="weights", unit="checkpoint", disable=not s.progress) as bar:
        for spec in bar:
            ck = load_checkpoint(spec, base=base)
            name = display_name(ck)
            while name in results:
                name += "'"
            bar.set_postfix_str(name, refresh=False)
            try:
                ws = results[name] = weight_space(
                    base_ck.model, ck.model, s.top_k, s.threshold, s.side, progress=s.progress
                )
            except ValueError as exc:  # another architecture or width: say which pair, and the fix
                raise ValueError(
                    f"tuned checkpoint {spec} against base {base}: {exc}; the "
                    "weight space compares a fine-tune with the model it was "
                    "fine-tuned from (same architecture and widths): give that base"
                ) from None
            if not ws.matrices and not ws.skipped:
                raise ValueError(
                    f"tuned checkpoint {spec}: no linear map differs from the base; is it "
                    "the base itself, or an adapter that is not active?"
                )
            if probe is not None and s.probe is not None:
                _measure_effect(ws, base_ck, ck, probe, s)
            if s.merge_dtypes:
                _measure_merge(ws, base_ck, ck, probe, s)
    blocks = list(dict.fromkeys(b for ws in results.values() for b in ws.blocks))
    block_names = _block_names(base_ck.model)
    report = WeightsReport(
        checkpoints=results,
        settings={
            "k": s.top_k,
            "threshold": s.threshold,
            "side": s.side,
            "base": base,
            "tuned": list(tuned),
            "report": None if s.report is None else str(s.report),
            "probe": None if probe is None else probe.describe(),
            "num_samples": None if probe is None else len(probe),
            "merge_dtypes": None if s.merge_dtypes is None else list(s.merge_dtypes),
        },
        effects={c: effect_blocks(ws, block_names) for c, ws in results.items() if ws.effect},
        ranks=_representation_ranks(ranks, blocks),
        blocks=blocks,
    )
    if output is not None:
        write_weights(report, output, overwrite=overwrite, inputs=_inputs(base, tuned, s))
    return report


def _batches(probe, base_ck, ck, s: WeightsConfig, what: str):
    """Fresh probe batches (each checkpoint's tokenizer checked to agree), with a bar."""
    from tqdm.auto import tqdm

    from repspace.compare.weights import _processor
    from repspace.probe import make_batches

    processor = _processor(base_ck, ck, probe)
    total = math.ceil(len(probe) / s.batch_size)

    def fresh():
        return tqdm(
            make_batches(probe, base_ck.model, processor, batch_size=s.batch_size),
            total=total,
            desc=what,
            unit="batch",
            leave=False,
            disable=not s.progress,
        )

    return fresh


def _measure_effect(ws, base_ck, ck, probe, s: WeightsConfig) -> None:
    """Fill ``ws.effect`` (‖Δh‖/‖h‖ per adapted module of ``ck``) on ``probe``, or say why not."""
    from repspace.compare.adapter_effect import adapted_modules, adapter_effect

    if not adapted_modules(ck.model):
        ws.effect_note = (
            "no adapter modules (e.g. a full fine-tune or merged weights): the "
            "adapter's share of each output is not defined; see the ΔW table"
        )
        return
    ws.effect = adapter_effect(ck.model, _batches(probe, base_ck, ck, s, "adapter effect")())


def _measure_merge(ws, base_ck, ck, probe, s: WeightsConfig) -> None:
    """Fill ``ws.merge`` (merge fidelity per dtype of ``ck``'s adapter) on ``probe``, or say why not."""
    from repspace.compare.merge_fidelity import can_merge, merge_fidelity

    why = can_merge(ck.model)
    if why:
        ws.merge_note = why
        return
    fid = merge_fidelity(
        ck.model,
        _batches(probe, base_ck, ck, s, "merge fidelity"),
        list(s.merge_dtypes),
        batch_size=s.batch_size,
        label=ck.spec,
        progress=s.progress,
    )
    ws.merge = {d: f.as_dict() for d, f in fid.items()}


def write_weights(
    report: WeightsReport, output: str | Path, *, overwrite: bool = False, inputs=()
) -> Path:
    """Write ``report`` into ``output`` atomically (staged, then published: a failure leaves
    nothing half-written); returns the folder."""
    from repspace.compare.weights import _csv, _is_weights_folder, _markdown
    from repspace.outputs import apply_umask, check_output, publish, staging_dir

    out = check_output(
        output,
        overwrite=overwrite,
        inputs=inputs,
        is_ours=_is_weights_folder,
        kind="repspace weights",
    )
    tmp = staging_dir(out, "weights")
    try:
        (tmp / "weights.json").write_text(
            json.dumps(report.to_dict(), indent=2, allow_nan=True), encoding="utf-8"
        )
        (tmp / "weights.csv").write_text(_csv(report.checkpoints), encoding="utf-8")
        from repspace.report.weight_figures import (
            figures_markdown,
            plot_adapter_effect,
            plot_merge_fidelity,
            plot_weight_vs_representation,
        )

        md = _markdown(report.checkpoints, report.settings) + figures_markdown(  # numbered
            {c: ws.blocks for c, ws in report.checkpoints.items()} if report.blocks else {},
            representation=bool(report.ranks),
            effects=bool(report.effects),
            merges=any(ws.merge for ws in report.checkpoints.values()),
        )
        (tmp / "weights.md").write_text(md, encoding="utf-8")

        if report.blocks:
            plot_weight_vs_representation(
                {c: ws.blocks for c, ws in report.checkpoints.items()},
                report.ranks,
                tmp / "weight_vs_representation",
            )
        if report.effects:
            plot_adapter_effect(report.effects, tmp / "adapter_effect")
        merges = {c: ws.merge for c, ws in report.checkpoints.items() if ws.merge}
        if merges:
            plot_merge_fidelity(merges, tmp / "merge_fidelity")
        apply_umask(tmp)
        publish(tmp, out, overwrite=overwrite, is_ours=_is_weights_folder, kind="repspace weights")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.output = out
    return out


def summary_lines(report: WeightsReport) -> list[str]:
    """What the command prints: per checkpoint, its changed maps and intruders, merge
    fidelity, and the files written."""
    k, threshold = report.settings["k"], report.settings["threshold"]
    lines = []
    for ckpt, ws in report.checkpoints.items():
        intr = sum(r["intruder_dimensions"] for r in ws.matrices.values())
        lines.append(
            f"{ckpt}: {len(ws.matrices)} changed linear maps, {intr} intruder dimensions "
            f"(top {k}, |cos| < {threshold})"
        )
        for dtype, f in ws.merge.items():
            m = f["summary"]
            lines.append(
                f"{ckpt}: merged in {dtype}: min CKA {m['min_linear_cka']:.9f}, max "
                f"relative shift {m['max_relative_shift']:.3g}, median ‖W_m − W‖/‖ΔW‖ "
                f"{m['median_merge_error']:.3g}"
            )
        if ws.merge_note:
            lines.append(f"{ckpt}: merge fidelity: {ws.merge_note}")
    if report.output is not None:
        merges = any(ws.merge for ws in report.checkpoints.values())
        lines.append(
            f"wrote {report.output}/weights.json, weights.csv, weights.md"
            + (", weight_vs_representation.pdf/png" if report.blocks else "")
            + (", adapter_effect.pdf/png" if report.effects else "")
            + (", merge_fidelity.pdf/png" if merges else "")
        )
    return lines


def settings_dict(s: WeightsConfig) -> dict:
    """``s`` as plain data (for logs and tests)."""
    d = asdict(s)
    d["merge_dtypes"] = None if s.merge_dtypes is None else list(s.merge_dtypes)
    return d
