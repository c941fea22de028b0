"""Paired streaming accumulators for one layer or many layers at once.

:class:`LayerwiseMoments` holds, for every captured layer of the base and the tuned
model, a :class:`FeatureMoments`, and for every compared pair of layers a
:class:`CrossMoments` (plus per-sample drift when the widths agree).  The capture sink
feeds it batch by batch; ``compute()`` returns every metric that is a closed-form
function of the statistics, and ``cka_matrix()`` the cross-layer CKA.

It follows torchmetrics' shape: ``update`` / ``merge`` / ``compute`` and
``state_dict()`` with per-state reduction rules.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from repspace._validation import as_matrix, check_min_rows
from repspace.closed_forms.cka import linear_cka_from_moments
from repspace.closed_forms.jackknife import grams_affordable, rows_replicates
from repspace.closed_forms.rows import linear_cka_from_rows
from repspace.closed_forms.summary import layerwise_summary
from repspace.statistics.base import Accumulator
from repspace.statistics.blocks import IntervalBlocks
from repspace.statistics.collective import collective_device
from repspace.statistics.drift_stats import PairedDriftStats
from repspace.statistics.moments import CrossMoments, FeatureMoments, row_norms2
from repspace.statistics.reduce import all_reduce_layerwise
from repspace.statistics.rows import CrossRows, FeatureRows
from repspace.statistics.units import Unit, unit_moments_bytes, unit_rows_bytes, units_of

__all__ = ["LayerwiseMoments", "PairedMoments", "ROUTE_CHOICES"]

PairSpec = str | Sequence[tuple[str, str]]
ROUTE_CHOICES = ("auto", "rows", "moments")


def _empty(self) -> dict:
    return {}


class LayerwiseMoments(Accumulator):
    """Streaming statistics of paired base/tuned features for many layers.

    Parameters
    ----------
    pairs : "matched" | "all" | list of (base_layer, tuned_layer)
        Which cross statistics to keep.  ``"matched"``: each layer with the same-named
        layer (O(L·pq) memory); ``"all"``: every base layer with every tuned layer, for
        :meth:`cka_matrix` (O(L²·pq)); or an explicit list.
    precision : {"auto", "float64"}
        See :class:`~repspace.statistics.moments.FeatureMoments`.
    paired_drift : bool
        Also track per-sample cosine similarity and relative shift for pairs of equal width.
    base_from : LayerwiseMoments, optional
        Share that accumulator's base statistics: k tuned models against one base keep one
        base Gram per layer, not k.  ``base_from`` is updated first each batch, and this
        one with the same base batch objects, which it then does not add again.  Sharing
        accumulators cannot be merged (each reduces across processes on its own copy).
    blocks : int
        Keep per-block moments (row i in block i mod ``blocks``) for the layers held as moments,
        where affordable (:mod:`repspace.statistics.blocks`), so :meth:`replicates` gives their
        jackknife too; 0: none.
    route : {"auto", "rows", "moments"}
        How each layer holds its statistics (:mod:`repspace.statistics.routes`):
        ``"auto"`` keeps the rows while they are smaller than the moments and converts, exactly,
        when n crosses the break-even; ``"rows"`` / ``"moments"`` force one route.  Every
        metric is the same number on both routes.  An accumulator sharing its base
        (``base_from``) follows the owner's route layer by layer.
    """

    # reset: forget every sample and layer, keep the settings (pairs, precision, sharing, route)
    defaults = {
        "base": _empty,
        "tuned": _empty,
        "cross": _empty,
        "drift": _empty,
        "units": lambda self: [],
        "n": 0,
        "interval_blocks": lambda self: IntervalBlocks(self.block_count),
    }

    def __init__(
        self,
        pairs: PairSpec = "matched",
        precision: str = "auto",
        paired_drift: bool = True,
        side_names: tuple[str, str] = ("base", "tuned"),
        base_from: "LayerwiseMoments | None" = None,
        route: str = "auto",
        blocks: int = 0,
    ):
        if route not in ROUTE_CHOICES:
            raise ValueError(f"route must be one of {', '.join(ROUTE_CHOICES)}; got {route!r}")
        if isinstance(pairs, str) and pairs not in ("matched", "all"):
            raise ValueError(
                f"pairs must be 'matched', 'all' or a list of (base, tuned) "
                f"layer names; got {pairs!r}"
            )
        self.pairs_spec = pairs if isinstance(pairs, str) else [tuple(p) for p in pairs]
        self.precision = precision
        self.track_drift = paired_drift
        self.side_names = side_names
        self.route = route
        self.block_count = blocks  # jackknife blocks of the moments layers (statistics/blocks.py)
        self.base: dict[str, FeatureMoments | FeatureRows] = {}
        self.tuned: dict[str, FeatureMoments | FeatureRows] = {}
        self.cross: dict[tuple[str, str], CrossMoments | CrossRows] = {}
        self.units: list[Unit] = []
        self.drift: dict[tuple[str, str], PairedDriftStats] = {}
        self.reset()
        self.base_from = base_from
        self.base_shared = False  # set by share_base(): others read this one's base statistics

    # -- layout ----------------------------------------------------------------------
    def _pairs_for(self, base_names, tuned_names) -> list[tuple[str, str]]:
        if self.pairs_spec == "matched":
            missing_t = [b for b in base_names if b not in tuned_names]
            missing_b = [t for t in tuned_names if t not in base_names]
            if missing_t or missing_b:
                raise ValueError(
                    f"layers differ between base and tuned: only in base {missing_t}, only in "
                    f"tuned {missing_b}; capture the same layer names on both models"
                )
            return [(b, b) for b in base_names]
        if self.pairs_spec == "all":
            return [(b, t) for b in base_names for t in tuned_names]
        for b, t in self.pairs_spec:
            if b not in base_names:
                raise ValueError(
                    f"pair ({b!r}, {t!r}): base layer {b!r} was not given to "
                    f"update(); got {sorted(base_names)}"
                )
            if t not in tuned_names:
                raise ValueError(
                    f"pair ({b!r}, {t!r}): tuned layer {t!r} was not given to "
                    f"update(); got {sorted(tuned_names)}"
                )
        return list(self.pairs_spec)

    def _label(self, side: int, layer: str) -> str:
        """How errors name a layer: ``base[encoder.layer.3]`` (or just ``x`` for one layer)."""
        return f"{self.side_names[side]}[{layer}]" if layer else self.side_names[side]

    def share_base(self) -> None:
        """Let other accumulators use this one's base statistics (``base_from=self``); call
        it before the first batch, so that every base batch is remembered for them."""
        if self.n:
            raise ValueError("share_base() must be called before the first batch")
        self.base_shared = True

    def _new_side(self, side: int, name: str, rows: bool) -> FeatureMoments | FeatureRows:
        cls = FeatureRows if rows else FeatureMoments
        acc = cls(self.precision, name=self._label(side, name))
        acc.shared = side == 0 and self.base_shared
        return acc

    def _base_moments(self, name: str, rows: bool) -> FeatureMoments | FeatureRows:
        """This layer's base statistics: new, or ``base_from``'s (shared, added once)."""
        if self.base_from is None:
            return self._new_side(0, name, rows)
        owner = self.base_from.base.get(name)
        if owner is None or not owner.shared:
            raise ValueError(
                f"base layer {name!r}: the accumulator given as base_from has not "
                "seen it or did not call share_base() before its first batch"
            )
        return owner

    def _starts_on_rows(self, unit: Unit) -> bool:
        if self.base_from is not None:  # follow the owner of the shared base
            return all(
                isinstance(self.base_from.base.get(layer), FeatureRows)
                for side, layer in unit.sides
                if side == "base"
            )
        return self.route != "moments"

    # -- routes ------------------------------------------------------------------------
    def _side(self, key: tuple[str, str]):
        return (self.base if key[0] == "base" else self.tuned)[key[1]]

    def unit_route(self, unit: Unit) -> str:
        return "rows" if isinstance(self._side(unit.sides[0]), FeatureRows) else "moments"

    def holds_rows_only(self) -> bool:
        """True while every layer pair keeps its rows (before the first batch: will keep
        them).  Rows cost nothing per update, so a caller batching updates to amortise the
        moments' O(p²) cost has no reason to buffer, and buffering would hold them twice."""
        if not self.units:
            if self.base_from is not None:
                return self.base_from.holds_rows_only()
            return self.route != "moments"
        return all(self.unit_route(unit) == "rows" for unit in self.units)

    def routes(self) -> dict[tuple[str, str], str]:
        """``{(base_layer, tuned_layer): "rows" | "moments"}``: how each pair is held now."""
        return {pair: self.unit_route(unit) for unit in self.units for pair in unit.pairs}

    def widths(self) -> dict[tuple[str, str], int]:
        return {k: self._side(k).dim for unit in self.units for k in unit.sides}

    def statistics_bytes(self) -> dict[str, int]:
        """Bytes held per unit (its name: the layer for matched pairs) on its current route."""
        widths, out = self.widths(), {}
        for unit in self.units:
            if self.unit_route(unit) == "rows":
                out[unit.name] = sum(self._side(k).nbytes for k in unit.sides)
            else:
                out[unit.name] = unit_moments_bytes(unit, widths)
        return out

    def _due_for_moments(self, unit: Unit) -> bool:
        if self.base_from is not None:
            return any(
                isinstance(self.base_from.base.get(layer), FeatureMoments)
                for side, layer in unit.sides
                if side == "base"
            )
        if self.route != "auto":
            return False
        itemsize = max(self._side(k).itemsize for k in unit.sides)
        widths = self.widths()
        return unit_rows_bytes(unit, widths, self.n, itemsize) >= unit_moments_bytes(unit, widths)

    def _replayed(self, unit: Unit, share_base: bool):
        """The unit's rows as moments: ``({side key: FeatureMoments}, {pair: CrossMoments})``,
        every batch replayed in order as the moments route adds it (exact, no state of this
        accumulator touched).  ``share_base``: use ``base_from``'s converted base moments."""
        plan = {}
        for key in unit.sides:
            rows = self._side(key)
            if key[0] == "base" and share_base and self.base_from is not None:
                plan[key] = (self.base_from.base[key[1]], rows, False)
            else:
                fm = FeatureMoments(self.precision, name=rows.name)
                fm.shared = rows.shared
                plan[key] = (fm, rows, True)
        cross = {pair: CrossMoments() for pair in unit.pairs}
        offset = 0
        for i in range(len(plan[unit.sides[0]][1].batches)):
            xs, ks = {}, {}
            for key, (fm, rows, own) in plan.items():
                xs[key] = fm.shifted(rows.batches[i], row_offset=offset)
                ks[key] = fm.update_shifted(xs[key]) if own else row_norms2(xs[key])
            for (b, t), cm in cross.items():
                cm.update_shifted(xs["base", b], xs["tuned", t], ks["base", b], ks["tuned", t])
            offset += plan[unit.sides[0]][1].batches[i].shape[0]
        for key, (fm, rows, own) in plan.items():
            # a shared base converted during a batch: the sharers still to see that batch
            # must find it added (as they would have on the rows route)
            if own and rows._last is not None and rows._last[1] is rows.batches[-1]:
                fm.remember(rows._last[0], xs[key], ks[key])
        return {key: fm for key, (fm, _, _) in plan.items()}, cross

    def _install(self, sides: dict, cross: dict) -> None:
        for (side, layer), acc in sides.items():
            (self.base if side == "base" else self.tuned)[layer] = acc
        self.cross.update(cross)

    def to_moments(self, unit: Unit | None = None) -> "LayerwiseMoments":
        """Convert ``unit`` (default: every unit) from rows to moments, exactly."""
        for u in self.units if unit is None else [unit]:
            if self.unit_route(u) == "rows":
                self._install(*self._replayed(u, share_base=True))
        return self

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return list(self.cross)

    @property
    def layers(self) -> list[str]:
        return list(self.base)

    # -- streaming ---------------------------------------------------------------------
    def update(self, base: Mapping[str, object], tuned: Mapping[str, object]) -> "LayerwiseMoments":
        """Add one batch: ``{layer: (b, p_layer)}`` for the base and the tuned model."""
        if not isinstance(base, Mapping) or not isinstance(tuned, Mapping):
            raise TypeError("update() takes two mappings {layer_name: (batch, features)}")
        if not base:
            raise ValueError("update() got no layers")
        if self.base and (set(base) != set(self.base) or set(tuned) != set(self.tuned)):
            raise ValueError(
                f"layers changed between batches: expected base {sorted(self.base)} and tuned "
                f"{sorted(self.tuned)}, got {sorted(base)} and {sorted(tuned)}"
            )
        raw = {"b": base, "t": tuned}  # the caller's objects: shared base statistics key on them
        base = {k: as_matrix(v, self._label(0, k)) for k, v in base.items()}
        tuned = {k: as_matrix(v, self._label(1, k)) for k, v in tuned.items()}
        rows = {self._label(0, k): v.shape[0] for k, v in base.items()}
        rows.update({self._label(1, k): v.shape[0] for k, v in tuned.items()})
        if len(set(rows.values())) != 1:
            if len(rows) == 2:
                (a, na), (b, nb) = rows.items()
                raise ValueError(
                    f"{a} has {na} rows but {b} has {nb}; paired metrics need "
                    "the same samples, in the same order, through both models"
                )
            raise ValueError(
                f"all layers of one batch need the same number of rows (paired samples); got {rows}"
            )
        if not self.cross:
            pairs = self._pairs_for(list(base), list(tuned))  # validate before any state
            self.units = units_of(pairs)
            for unit in self.units:
                on_rows = self._starts_on_rows(unit)
                for side, name in unit.sides:
                    if side == "base":
                        self.base[name] = self._base_moments(name, on_rows)
                    else:
                        self.tuned[name] = self._new_side(1, name, on_rows)
                for pair in unit.pairs:
                    self.cross[pair] = CrossRows() if on_rows else CrossMoments()
            # layers in no pair: a side of their own, kept as moments
            for side, names in ((0, base), (1, tuned)):
                accs = self.base if side == 0 else self.tuned
                for name in names:
                    if name not in accs:
                        accs[name] = (
                            self._base_moments(name, False)
                            if side == 0
                            else self._new_side(1, name, False)
                        )

        # Validate every layer before touching any state, so a bad layer leaves no
        # half-updated accumulator behind.
        shifted, norms, kept = {}, {}, {}
        for side, feats, accs in (("b", base, self.base), ("t", tuned, self.tuned)):
            for name, batch in feats.items():
                done = accs[name].remembered(raw[side][name])  # added by a sharing accumulator
                if isinstance(accs[name], FeatureRows):
                    if done is not None:
                        shifted[side, name] = done
                    else:
                        kept[side, name] = shifted[side, name] = accs[name].prepared(
                            raw[side][name], row_offset=self.n
                        )
                elif done is not None:
                    shifted[side, name], norms[side, name] = done
                else:
                    shifted[side, name] = accs[name].shifted(batch, row_offset=self.n)
        for side, feats, accs in (("b", base, self.base), ("t", tuned, self.tuned)):
            for name in feats:
                if (side, name) in kept:
                    accs[name].add(kept[side, name])
                    accs[name].remember(raw[side][name], kept[side, name])
                elif (side, name) not in norms and not isinstance(accs[name], FeatureRows):
                    norms[side, name] = accs[name].update_shifted(shifted[side, name])
                    accs[name].remember(raw[side][name], shifted[side, name], norms[side, name])
        if self.block_count and self.n == 0:  # units on moments from the first batch
            widths = {
                **{("base", k): v.shape[1] for k, v in base.items()},
                **{("tuned", k): v.shape[1] for k, v in tuned.items()},
            }
            for i, unit in enumerate(self.units):
                if self.unit_route(unit) == "moments" and self.interval_blocks.affordable(
                    unit, widths
                ):
                    self.interval_blocks.start(i, unit, lambda u=unit: self._block(u))
        for i, unit in enumerate(self.units):
            if self.unit_route(unit) == "moments":
                self.interval_blocks.feed(i, unit, base, tuned, self.n)
        for (b, t), cross in self.cross.items():
            xs, ys = shifted["b", b], shifted["t", t]
            if not isinstance(cross, CrossRows):  # rows are their own cross statistics
                cross.update_shifted(xs, ys, norms["b", b], norms["t", t])
            if self.track_drift and xs.shape[1] == ys.shape[1]:
                # from the rows as given, so both routes see the same per-sample values
                self.drift.setdefault((b, t), PairedDriftStats()).update(
                    base[b].double().to(xs.device), tuned[t].double().to(xs.device)
                )
        self.n += next(iter(rows.values()))
        for i, unit in enumerate(self.units):
            if self.unit_route(unit) == "rows" and self._due_for_moments(unit):
                self._open_blocks(i, unit)
                self._install(*self._replayed(unit, share_base=True))
        return self

    def _block(self, unit: Unit) -> "LayerwiseMoments":
        return LayerwiseMoments(
            list(unit.pairs),
            precision=self.precision,
            route="moments",
            paired_drift=self.track_drift,
            side_names=self.side_names,
        )

    def _open_blocks(self, index: int, unit: Unit) -> None:
        """A unit going from rows to moments: its rows, replayed in order, into its blocks."""
        if not (self.block_count and self.interval_blocks.affordable(unit, self.widths())):
            return
        self._feed_blocks(self.interval_blocks, index, unit)

    def _feed_blocks(self, blocks: IntervalBlocks, index: int, unit: Unit) -> None:
        """Open ``blocks`` for a rows unit and feed them its rows, in order."""
        blocks.start(index, unit, lambda: self._block(unit))
        sides = {key: self._side(key).batches for key in unit.sides}
        first = 0
        for i in range(len(sides[unit.sides[0]])):
            base = {layer: rows[i] for (side, layer), rows in sides.items() if side == "base"}
            tuned = {layer: rows[i] for (side, layer), rows in sides.items() if side == "tuned"}
            blocks.feed(index, unit, base, tuned, first)
            first += sides[unit.sides[0]][i].shape[0]

    def merge(self, other: "LayerwiseMoments") -> "LayerwiseMoments":
        """Add another accumulator's samples (same layers and pairs), unit by unit: rows
        are concatenated while both hold rows, else both are taken as moments."""
        if not isinstance(other, LayerwiseMoments):
            raise TypeError(f"cannot merge {type(other).__name__} into LayerwiseMoments")
        if any(fm.shared for fm in self.base.values()):
            raise ValueError(
                "cannot merge into an accumulator whose base statistics are shared "
                "with others (base_from): the merge would add the base rows to all"
            )
        if other.n == 0:
            return self
        if self.n == 0 and not self.cross:
            self.units = list(other.units)
            for side, accs in (("base", other.base), ("tuned", other.tuned)):
                for k, v in accs.items():
                    getattr(self, side)[k] = type(v)(self.precision, name=v.name)
            self.cross = {k: type(v)() for k, v in other.cross.items()}
        if set(other.cross) != set(self.cross):
            raise ValueError("cannot merge accumulators that track different layer pairs")
        for unit in self.units:
            if self.unit_route(unit) == "rows" and other.unit_route(unit) == "rows":
                for key in unit.sides:
                    self._side(key).merge(other._side(key))
                continue
            if self.unit_route(unit) == "rows":
                self._install(*self._replayed(unit, share_base=False))
            theirs, their_cross = (
                (other._replayed(unit, share_base=False))
                if other.unit_route(unit) == "rows"
                else (
                    {k: other._side(k) for k in unit.sides},
                    {p: other.cross[p] for p in unit.pairs},
                )
            )
            self._merge_moments(unit, theirs, their_cross)
        for side, accs in (("base", self.base), ("tuned", self.tuned)):  # layers in no pair
            for k, fm in accs.items():
                if not any((side, k) in u.sides for u in self.units):
                    fm.merge(getattr(other, side)[k])
        for pair, d in other.drift.items():
            self.drift.setdefault(pair, PairedDriftStats()).merge(d)
        self.interval_blocks.merge(other.interval_blocks)  # row numbers: see blocks.py
        self.n += other.n
        for unit in self.units:
            if self.unit_route(unit) == "rows" and self._due_for_moments(unit):
                self._install(*self._replayed(unit, share_base=True))
        return self

    def _merge_moments(self, unit: Unit, theirs: dict, their_cross: dict) -> None:
        for key in unit.sides:
            self._side(key).adopt_shift_of(theirs[key])
        # Cross terms first: they are re-shifted with the other side's pre-merge sums.
        for b, t in unit.pairs:
            self.cross[b, t].merge_from(
                their_cross[b, t],
                self.base[b],
                self.tuned[t],
                theirs["base", b],
                theirs["tuned", t],
            )
        for key in unit.sides:
            self._side(key).merge(theirs[key])

    def state_dict(self) -> dict:
        """Nested states: ``{"base": {layer: {...}}, "tuned": ..., "cross": {(b, t): {...}}}``
        (a rows-route side holds ``{"n", "rows"}``, its pairs' cross states are empty)."""
        return {
            "n": self.n,
            "base": {k: v.state_dict() for k, v in self.base.items()},
            "tuned": {k: v.state_dict() for k, v in self.tuned.items()},
            "cross": {
                k: v.state_dict() if isinstance(v, CrossMoments) else {}
                for k, v in self.cross.items()
            },
            "drift": {k: v.state_dict() for k, v in self.drift.items()},
        }

    def load_state_dict(self, states: dict) -> "LayerwiseMoments":
        """Replace every state by ``states`` (as :meth:`state_dict` returns them)."""

        def side(i: int, k: str, state: dict):
            cls = FeatureRows if "rows" in state else FeatureMoments
            return cls(self.precision, name=self._label(i, k)).load_state_dict(state)

        self.base = {k: side(0, k, v) for k, v in states["base"].items()}
        self.tuned = {k: side(1, k, v) for k, v in states["tuned"].items()}
        self.cross = {
            tuple(k): CrossMoments().load_state_dict(v) if v else CrossRows()
            for k, v in states["cross"].items()
        }
        self.units = units_of(list(self.cross))
        self.drift = {
            tuple(k): PairedDriftStats().load_state_dict(v)
            for k, v in states.get("drift", {}).items()
        }
        self.n = int(states["n"])
        return self

    def layout(self) -> dict | None:
        """What this accumulator tracks (layer widths, pairs, drift pairs, display names);
        None before any data.  Ranks of a distributed run must agree on it."""
        if self.n == 0:
            return None
        return {
            "base": {k: v.dim for k, v in self.base.items()},
            "tuned": {k: v.dim for k, v in self.tuned.items()},
            "pairs": list(self.cross),
            "drift": list(self.drift),
            "names": (
                {k: v.name for k, v in self.base.items()},
                {k: v.name for k, v in self.tuned.items()},
            ),
        }

    def all_reduce(self, group=None, device=None) -> "LayerwiseMoments":
        """Every rank's rows in this accumulator, on every rank (a collective; ranks that saw
        no rows take part with zero states).  See :mod:`repspace.statistics.reduce`."""
        device = collective_device(group) if device is None else device
        self.interval_blocks.drop()  # per-block moments stay per process (statistics/blocks.py)
        return all_reduce_layerwise(self, group, device)

    # -- results ------------------------------------------------------------------------
    def _check_ready(self, minimum: int = 2) -> None:
        if self.n == 0:
            raise ValueError("no samples were accumulated; call update() first")
        check_min_rows(self.n, minimum, "this metric")

    def compute(
        self, top_k: int = 10, metrics=None, progress=None, spectra_cache=None
    ) -> dict[tuple[str, str], dict[str, float]]:
        """Every closed-form metric for every tracked pair: ``{(base, tuned): {metric: value}}``
        (``metrics``: only the keys starting with one of these names, and only their work).

        Keys are the metric functions' names (``linear_cka``, ``linear_cka_debiased``,
        ``frechet_distance``, ``mmd_linear`` (linear kernel, paired, unbiased), ``procrustes_distance``,
        ``effective_rank_base`` / ``_tuned``, ``stable_rank_*``, ``numerical_rank_*``,
        ``participation_ratio_*``, and for equal widths ``subspace_overlap``,
        ``cosine_similarity_mean`` / ``_q50`` and ``relative_shift_mean`` / ``_q50``).
        Needs at least 4 samples (the debiased estimators); undefined values are NaN
        with an ``UndefinedMetricWarning``.  ``progress``: called with 1 after each pair;
        ``spectra_cache``: see :func:`~repspace.closed_forms.summary.layerwise_summary`.
        """
        self._check_ready(4)
        return layerwise_summary(
            self, top_k=top_k, metrics=metrics, progress=progress, spectra_cache=spectra_cache
        )

    def replicates(
        self, blocks: int, metrics=None, top_k: int = 10, progress=None
    ) -> dict[tuple[str, str], dict[str, np.ndarray]]:
        """Delete-one-block jackknife replicates of every closed-form metric: pairs held as
        rows from their rows (:mod:`repspace.closed_forms.jackknife`; row i in block i mod
        ``blocks``), pairs held as moments from their per-block moments where kept
        (``blocks=`` at construction; :mod:`repspace.statistics.blocks`), else absent.
        ``progress``: called with 1 after each pair that has replicates (a bar's update;
        :meth:`replicated_pairs` counts them beforehand)."""
        self._check_ready(4)
        out = {}
        for index, unit in enumerate(self.units):
            source = self._replicate_source(index, unit, blocks)
            if source is None:
                continue
            if source != "grams":
                reps: dict = {}
                for loo in source.leave_one_out(index, lambda: self._block(unit)):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # an undefined replicate is NaN
                        values = loo.compute(top_k=top_k, metrics=metrics)
                    for pair, row in values.items():
                        for key, v in row.items():
                            reps.setdefault(pair, {}).setdefault(key, []).append(v)
                out.update(
                    {pair: {k: np.asarray(v) for k, v in row.items()} for pair, row in reps.items()}
                )
                if progress is not None:
                    progress(len(reps))
                continue
            for b, t in unit.pairs:
                x, y = self.base[b], self.tuned[t]
                xr = x.rows()
                out[b, t] = rows_replicates(
                    xr, y.rows().to(xr.device), blocks, metrics, top_k, (x.eps, y.eps)
                )
                if progress is not None:
                    progress(1)
        return out

    def replicated_pairs(self, blocks: int = 2) -> int:
        """How many pairs :meth:`replicates` will give replicates for (a progress total)."""
        return sum(
            len(unit.pairs)
            for index, unit in enumerate(self.units)
            if self._replicate_source(index, unit, blocks, build=False) is not None
        )

    def _replicate_source(self, index: int, unit: Unit, blocks: int, build: bool = True):
        """Where a unit's replicates come from: ``"grams"`` (its rows' n × n Grams), an
        :class:`IntervalBlocks` (per-block moments: kept since the unit became moments, or
        built now from rows too many for the Grams), or None (no interval: see
        :func:`~repspace.closed_forms.jackknife.grams_affordable` and
        :mod:`repspace.statistics.blocks`)."""
        if self.unit_route(unit) != "rows":
            return self.interval_blocks if index in self.interval_blocks.units else None
        widths = self.widths()
        if all(
            grams_affordable(self.n, widths["base", b], widths["tuned", t]) for b, t in unit.pairs
        ):
            return "grams"
        per_block = IntervalBlocks(blocks)
        if not per_block.affordable(unit, widths):
            return None
        if build:
            self._feed_blocks(per_block, index, unit)
        return per_block

    def cka_matrix(self, debiased: bool = False) -> tuple[np.ndarray, list[str], list[str]]:
        """Cross-layer CKA: ``(matrix[L_base, L_tuned], base_names, tuned_names)``.

        Requires ``pairs="all"`` (or an explicit list; untracked pairs are NaN).
        """
        self._check_ready(4 if debiased else 2)
        bnames, tnames = list(self.base), list(self.tuned)
        out = np.full((len(bnames), len(tnames)), np.nan)
        rows_units = [u for u in self.units if self.unit_route(u) == "rows"]
        grams = {}
        for unit in rows_units:
            widths = self.widths()
            if all(self.n <= widths[k] for k in unit.sides):  # n × n Grams: smaller than d × d
                grams.update({k: self._side(k).centred() for k in unit.sides})
            else:
                self.to_moments(unit)  # exact; the d × d forms are the cheaper ones here
        centred = {}
        for (b, t), cross in self.cross.items():
            if ("base", b) in grams:
                value = linear_cka_from_rows(grams["base", b], grams["tuned", t], debiased)
            else:
                for key in (("base", b), ("tuned", t)):
                    if key not in centred:
                        centred[key] = self._side(key).centred()
                value = linear_cka_from_moments(
                    centred["base", b],
                    centred["tuned", t],
                    cross.centred(self.base[b], self.tuned[t]),
                    debiased=debiased,
                )
            out[bnames.index(b), tnames.index(t)] = value
        return out, bnames, tnames


class PairedMoments(Accumulator):
    """Streaming statistics of one paired representation (base X: n×p, tuned Y: n×q).

    A single-layer view of :class:`LayerwiseMoments`::

        acc = PairedMoments()
        for xb, yb in batches:
            acc.update(xb, yb)
        acc.linear_cka(debiased=True)
    """

    def __init__(self, precision: str = "auto", paired_drift: bool = True, route: str = "auto"):
        self._layers = LayerwiseMoments(
            "matched",
            precision=precision,
            route=route,
            paired_drift=paired_drift,
            side_names=("x", "y"),
        )

    @property
    def n(self) -> int:
        return self._layers.n

    @property
    def layerwise(self) -> LayerwiseMoments:
        """The one-layer :class:`LayerwiseMoments` holding the states (layer name ``""``)."""
        return self._layers

    @property
    def x(self) -> FeatureMoments:
        return self._layers.base[""]

    @property
    def y(self) -> FeatureMoments:
        return self._layers.tuned[""]

    @property
    def xy(self) -> CrossMoments:
        return self._layers.cross["", ""]

    def update(self, x_batch, y_batch) -> "PairedMoments":
        self._layers.update({"": x_batch}, {"": y_batch})
        return self

    def merge(self, other: "PairedMoments") -> "PairedMoments":
        if not isinstance(other, PairedMoments):
            raise TypeError(f"cannot merge {type(other).__name__} into PairedMoments")
        self._layers.merge(other._layers)
        return self

    def state_dict(self) -> dict:
        return self._layers.state_dict()

    def load_state_dict(self, states: dict) -> "PairedMoments":
        self._layers.load_state_dict(states)
        return self

    def reset(self) -> "PairedMoments":
        self._layers.reset()
        return self

    def all_reduce(self, group=None, device=None) -> "PairedMoments":
        self._layers.all_reduce(group, device)
        return self

    def linear_cka(self, debiased: bool = False) -> float:
        return float(self._layers.cka_matrix(debiased)[0][0, 0])

    def compute(self, top_k: int = 10) -> dict[str, float]:
        """All closed-form metrics (see :meth:`LayerwiseMoments.compute`)."""
        return self._layers.compute(top_k=top_k)["", ""]
