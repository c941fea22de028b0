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

from collections.abc import Mapping, Sequence

import numpy as np

from repspace._validation import as_matrix, check_min_rows
from repspace.functional.cka import linear_cka_from_moments
from repspace.functional.summary import layerwise_summary
from repspace.statistics.base import Accumulator
from repspace.statistics.collective import collective_device
from repspace.statistics.drift_stats import PairedDriftStats
from repspace.statistics.moments import CrossMoments, FeatureMoments
from repspace.statistics.reduce import all_reduce_layerwise

__all__ = ["LayerwiseMoments", "PairedMoments"]

PairSpec = str | Sequence[tuple[str, str]]


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
    """

    def __init__(self, pairs: PairSpec = "matched", precision: str = "auto",
                 paired_drift: bool = True, side_names: tuple[str, str] = ("base", "tuned"),
                 base_from: "LayerwiseMoments | None" = None):
        if isinstance(pairs, str) and pairs not in ("matched", "all"):
            raise ValueError(f"pairs must be 'matched', 'all' or a list of (base, tuned) "
                             f"layer names; got {pairs!r}")
        self.pairs_spec = pairs if isinstance(pairs, str) else [tuple(p) for p in pairs]
        self.precision = precision
        self.track_drift = paired_drift
        self.side_names = side_names
        self.base: dict[str, FeatureMoments] = {}
        self.tuned: dict[str, FeatureMoments] = {}
        self.cross: dict[tuple[str, str], CrossMoments] = {}
        self.drift: dict[tuple[str, str], PairedDriftStats] = {}
        self.n = 0
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
                raise ValueError(f"pair ({b!r}, {t!r}): base layer {b!r} was not given to "
                                 f"update(); got {sorted(base_names)}")
            if t not in tuned_names:
                raise ValueError(f"pair ({b!r}, {t!r}): tuned layer {t!r} was not given to "
                                 f"update(); got {sorted(tuned_names)}")
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

    def _base_moments(self, name: str) -> FeatureMoments:
        """This layer's base statistics: new, or ``base_from``'s (shared, added once)."""
        if self.base_from is None:
            fm = FeatureMoments(self.precision, name=self._label(0, name))
            fm.shared = self.base_shared
            return fm
        owner = self.base_from.base.get(name)
        if owner is None or not owner.shared:
            raise ValueError(f"base layer {name!r}: the accumulator given as base_from has not "
                             "seen it or did not call share_base() before its first batch")
        return owner

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return list(self.cross)

    @property
    def layers(self) -> list[str]:
        return list(self.base)

    # -- streaming ---------------------------------------------------------------------
    def update(self, base: Mapping[str, object], tuned: Mapping[str, object]) -> None:
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
                raise ValueError(f"{a} has {na} rows but {b} has {nb}; paired metrics need "
                                 "the same samples, in the same order, through both models")
            raise ValueError(f"all layers of one batch need the same number of rows "
                             f"(paired samples); got {rows}")
        if not self.cross:
            pairs = self._pairs_for(list(base), list(tuned))  # validate before any state
            for name in base:
                self.base[name] = self._base_moments(name)
            for name in tuned:
                self.tuned[name] = FeatureMoments(self.precision, name=self._label(1, name))
            for pair in pairs:
                self.cross[pair] = CrossMoments()

        # Validate every layer before touching any state, so a bad layer leaves no
        # half-updated accumulator behind.
        shifted, norms = {}, {}
        for side, feats, accs in (("b", base, self.base), ("t", tuned, self.tuned)):
            for name, batch in feats.items():
                done = accs[name].remembered(raw[side][name])  # added by a sharing accumulator
                if done is not None:
                    shifted[side, name], norms[side, name] = done
                else:
                    shifted[side, name] = accs[name].shifted(batch, row_offset=self.n)
        for side, feats, accs in (("b", base, self.base), ("t", tuned, self.tuned)):
            for name in feats:
                if (side, name) not in norms:
                    norms[side, name] = accs[name].update_shifted(shifted[side, name])
                    accs[name].remember(raw[side][name], shifted[side, name], norms[side, name])
        for (b, t), cross in self.cross.items():
            xs, ys = shifted["b", b], shifted["t", t]
            cross.update_shifted(xs, ys, norms["b", b], norms["t", t])
            if self.track_drift and xs.shape[1] == ys.shape[1]:
                raw_x = xs.double() + self.base[b].shift
                raw_y = ys.double() + self.tuned[t].shift
                self.drift.setdefault((b, t), PairedDriftStats()).update(raw_x, raw_y)
        self.n += next(iter(rows.values()))

    def merge(self, other: "LayerwiseMoments") -> "LayerwiseMoments":
        """Add another accumulator's samples (same layers and pairs)."""
        if not isinstance(other, LayerwiseMoments):
            raise TypeError(f"cannot merge {type(other).__name__} into LayerwiseMoments")
        if any(fm.shared for fm in self.base.values()):
            raise ValueError("cannot merge into an accumulator whose base statistics are shared "
                             "with others (base_from): the merge would add the base rows to all")
        if other.n == 0:
            return self
        if self.n == 0 and not self.cross:
            self.base = {k: FeatureMoments(self.precision, name=v.name) for k, v in other.base.items()}
            self.tuned = {k: FeatureMoments(self.precision, name=v.name) for k, v in other.tuned.items()}
            self.cross = {k: CrossMoments() for k in other.cross}
        if set(other.cross) != set(self.cross):
            raise ValueError("cannot merge accumulators that track different layer pairs")
        for k in self.base:
            self.base[k].adopt_shift_of(other.base[k])
        for k in self.tuned:
            self.tuned[k].adopt_shift_of(other.tuned[k])
        # Cross terms first: they are re-shifted with the other side's pre-merge sums.
        for (b, t), cross in self.cross.items():
            cross.merge_from(other.cross[b, t], self.base[b], self.tuned[t],
                             other.base[b], other.tuned[t])
        for k in self.base:
            self.base[k].merge(other.base[k])
        for k in self.tuned:
            self.tuned[k].merge(other.tuned[k])
        for pair, d in other.drift.items():
            self.drift.setdefault(pair, PairedDriftStats()).merge(d)
        self.n += other.n
        return self

    def state_dict(self) -> dict:
        """Nested states: ``{"base": {layer: {...}}, "tuned": ..., "cross": {(b, t): {...}}}``."""
        return {
            "n": self.n,
            "base": {k: v.state_dict() for k, v in self.base.items()},
            "tuned": {k: v.state_dict() for k, v in self.tuned.items()},
            "cross": {k: v.state_dict() for k, v in self.cross.items()},
            "drift": {k: v.state_dict() for k, v in self.drift.items()},
        }

    def load_state_dict(self, states: dict) -> "LayerwiseMoments":
        """Replace every state by ``states`` (as :meth:`state_dict` returns them)."""
        self.base = {k: FeatureMoments(self.precision, name=self._label(0, k)).load_state_dict(v)
                     for k, v in states["base"].items()}
        self.tuned = {k: FeatureMoments(self.precision, name=self._label(1, k)).load_state_dict(v)
                      for k, v in states["tuned"].items()}
        self.cross = {tuple(k): CrossMoments().load_state_dict(v) for k, v in states["cross"].items()}
        self.drift = {tuple(k): PairedDriftStats().load_state_dict(v)
                      for k, v in states.get("drift", {}).items()}
        self.n = int(states["n"])
        return self

    def reset(self) -> "LayerwiseMoments":
        """Forget every sample and layer; keep the settings (pairs, precision, sharing)."""
        self.base, self.tuned, self.cross, self.drift, self.n = {}, {}, {}, {}, 0
        return self

    def layout(self) -> dict | None:
        """What this accumulator tracks (layer widths, pairs, drift pairs, display names);
        None before any data.  Ranks of a distributed run must agree on it."""
        if self.n == 0:
            return None
        return {"base": {k: v.dim for k, v in self.base.items()},
                "tuned": {k: v.dim for k, v in self.tuned.items()},
                "pairs": list(self.cross), "drift": list(self.drift),
                "names": ({k: v.name for k, v in self.base.items()},
                          {k: v.name for k, v in self.tuned.items()})}

    def all_reduce(self, group=None, device=None) -> "LayerwiseMoments":
        """Every rank's rows in this accumulator, on every rank (a collective; ranks that saw
        no rows take part with zero states).  See :mod:`repspace.statistics.reduce`."""
        device = collective_device(group) if device is None else device
        return all_reduce_layerwise(self, group, device)

    # -- results ------------------------------------------------------------------------
    def _check_ready(self, minimum: int = 2) -> None:
        if self.n == 0:
            raise ValueError("no samples were accumulated; call update() first")
        check_min_rows(self.n, minimum, "this metric")

    def compute(self, top_k: int = 10, metrics=None) -> dict[tuple[str, str], dict[str, float]]:
        """Every closed-form metric for every tracked pair: ``{(base, tuned): {metric: value}}``
        (``metrics``: only the keys starting with one of these names, and only their work).

        Keys are the metric functions' names (``linear_cka``, ``linear_cka_debiased``,
        ``frechet_distance``, ``mmd_linear`` (linear kernel, paired, unbiased), ``procrustes_distance``,
        ``effective_rank_base`` / ``_tuned``, ``stable_rank_*``, ``numerical_rank_*``,
        ``participation_ratio_*``, and for equal widths ``subspace_overlap``,
        ``cosine_similarity_mean`` / ``_q50`` and ``relative_shift_mean`` / ``_q50``).
        Needs at least 4 samples (the debiased estimators); undefined values are NaN
        with an ``UndefinedMetricWarning``.
        """
        self._check_ready(4)
        return layerwise_summary(self, top_k=top_k, metrics=metrics)

    def cka_matrix(self, debiased: bool = False) -> tuple[np.ndarray, list[str], list[str]]:
        """Cross-layer CKA: ``(matrix[L_base, L_tuned], base_names, tuned_names)``.

        Requires ``pairs="all"`` (or an explicit list; untracked pairs are NaN).
        """
        self._check_ready(4 if debiased else 2)
        bnames, tnames = list(self.base), list(self.tuned)
        out = np.full((len(bnames), len(tnames)), np.nan)
        centred_b = {k: v.centred() for k, v in self.base.items()}
        centred_t = {k: v.centred() for k, v in self.tuned.items()}
        for (b, t), cross in self.cross.items():
            out[bnames.index(b), tnames.index(t)] = linear_cka_from_moments(
                centred_b[b], centred_t[t], cross.centred(self.base[b], self.tuned[t]),
                debiased=debiased)
        return out, bnames, tnames


class PairedMoments(Accumulator):
    """Streaming statistics of one paired representation (base X: n×p, tuned Y: n×q).

    A single-layer view of :class:`LayerwiseMoments`::

        acc = PairedMoments()
        for xb, yb in batches:
            acc.update(xb, yb)
        acc.linear_cka(debiased=True)
    """

    def __init__(self, precision: str = "auto", paired_drift: bool = True):
        self._layers = LayerwiseMoments("matched", precision=precision,
                                        paired_drift=paired_drift, side_names=("x", "y"))

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
        self._layers._check_ready(4 if debiased else 2)
        return linear_cka_from_moments(self.x.centred(), self.y.centred(),
                                       self.xy.centred(self.x, self.y), debiased=debiased)

    def compute(self, top_k: int = 10) -> dict[str, float]:
        """All closed-form metrics (see :meth:`LayerwiseMoments.compute`)."""
        return self._layers.compute(top_k=top_k)["", ""]
