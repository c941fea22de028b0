"""One registry of every metric a comparison can report: what it is and what it promises.

Each entry says the metric's report key, family, what it is invariant to, its direction
(``"similarity"``: higher = more alike; ``"distance"``: higher = more moved; ``"property"``:
a per-representation quantity), its range, how it is computed (``"closed-form"``: exact
from the streaming statistics, rows or moments, at any n; ``"sample"``: on the bounded
seeded row sample), its requirements, and whether a plain ``repspace compare`` computes it
(``default``).  ``--metrics``, the report keys, ``repspace metrics`` and the table in
docs/metrics.md all read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "BOTH",
    "FAMILIES",
    "INVARIANCES",
    "REGISTRY",
    "MetricInfo",
    "all_names",
    "default_names",
    "expand",
    "markdown_table",
]

# An invariance named plainly holds when only one side is transformed (so also both); "… of
# both" only when the same map is applied to both sides (a drift measure compares two
# distributions in one space: moving one of them is the drift it measures).  Sample
# permutation is always of both (the pairing is kept).  benchmarks/measure_sanity.py checks
# every declaration on real features.
INVARIANCES = (
    "orthogonal",
    "isotropic scaling",
    "invertible linear",
    "translation",
    "sample permutation",
    "feature permutation",
)
BOTH = ("orthogonal of both", "isotropic scaling of both", "translation of both")
_ORTH = ("orthogonal", "isotropic scaling", "translation", "sample permutation")
_NONE_BUT_PERM = ("sample permutation",)
# CCA is invariant to any invertible linear map of either side (and so to its special cases)
_AFFINE = (
    "orthogonal",
    "isotropic scaling",
    "invertible linear",
    "translation",
    "sample permutation",
)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    family: str
    direction: str
    range: str
    kind: str
    invariant_to: tuple[str, ...]
    requires: str = ""
    default: bool = True
    description: str = ""


def _m(name, family, direction, rng, kind, inv, requires="", default=True, description=""):
    return MetricInfo(
        name, family, direction, rng, kind, tuple(inv), requires, default, description
    )


_RANK_DOC = {
    "effective_rank": "exp of the entropy of the normalised singular values (Roy & Vetterli)",
    "stable_rank": "Σσ² / σ₁²",
    "numerical_rank": "#σ above the resolution σ₁·√(p·ε)",
    "participation_ratio": "(Σλ)² / Σλ²",
}

# intrinsic-dimension estimators: key stem, what they need, what they are
_ID = (
    ("twonn", "n ≥ 10", "TwoNN intrinsic dimension (Facco et al. 2017)"),
    ("mle", "n > k = 20", "MLE intrinsic dimension (Levina–Bickel, MacKay–Ghahramani), k = 20"),
)

_ENTRIES = [
    _m(
        "linear_cka",
        "CKA",
        "similarity",
        "[0, 1]",
        "closed-form",
        _ORTH,
        description="linear CKA (Kornblith et al. 2019)",
    ),
    _m(
        "linear_cka_debiased",
        "CKA",
        "similarity",
        "≤ 1 (can be < 0)",
        "closed-form",
        _ORTH,
        "n ≥ 4",
        description="debiased HSIC (Song et al. 2012)",
    ),
    _m(
        "procrustes_distance",
        "shape",
        "distance",
        "[0, 2]",
        "closed-form",
        _ORTH,
        description="orthogonal Procrustes, 2 − 2‖XᵀY‖_*/(‖X‖‖Y‖)",
    ),
    *(
        _m(
            f"{r}_{side}",
            "spectrum",
            "property",
            "[1, min(n − 1, p)]" if r != "numerical_rank" else "{0, …, min(n − 1, p)}",
            "closed-form",
            _ORTH,
            description=f"{_RANK_DOC[r]} of the {side} features",
        )
        for side in ("base", "tuned")
        for r in _RANK_DOC
    ),
    _m(
        "frechet_distance",
        "drift",
        "distance",
        "[0, ∞)",
        "closed-form",
        ("orthogonal of both", "translation of both", "sample permutation"),
        "p = q",
        description="Fréchet distance of Gaussian fits",
    ),
    _m(
        "mmd_linear",
        "drift",
        "distance",
        "ℝ (unbiased)",
        "closed-form",
        ("orthogonal of both", "translation of both", "sample permutation"),
        "p = q",
        description="paired unbiased MMD², linear kernel",
    ),
    _m(
        "subspace_overlap",
        "subspace",
        "similarity",
        "[0, 1]",
        "closed-form",
        ("orthogonal of both", "isotropic scaling", "translation", "sample permutation"),
        "p = q, numerical rank ≥ k",
        description="mean cos² of the top-10 principal angles",
    ),
    *(
        _m(
            f"{q}_{stat}",
            "paired drift",
            d,
            r,
            "closed-form",
            ("sample permutation",),
            "p = q",
            description=f"{stat} of the per-sample {q.replace('_', ' ')}",
        )
        for q, d, r in (
            ("cosine_similarity", "similarity", "[−1, 1]"),
            ("relative_shift", "distance", "[0, ∞)"),
        )
        for stat in ("mean", "q50")
    ),
    _m(
        "rbf_cka",
        "CKA",
        "similarity",
        "[0, 1]",
        "sample",
        _ORTH,
        description="RBF-kernel CKA, median-heuristic bandwidth",
    ),
    _m(
        "mmd_rbf",
        "drift",
        "distance",
        "ℝ (unbiased)",
        "sample",
        (
            "orthogonal of both",
            "isotropic scaling of both",
            "translation of both",
            "sample permutation",
        ),
        "p = q",
        description="paired unbiased MMD², RBF kernel",
    ),
    _m(
        "mutual_knn_overlap",
        "neighbours",
        "similarity",
        "[0, 1]",
        "sample",
        ("orthogonal", "isotropic scaling", "sample permutation"),
        "n > 10",
        description="mutual k-NN overlap (Huh et al. 2024), k = 10",
    ),
    _m(
        "linear_cka_null",
        "CKA",
        "property",
        "p ∈ (0, 1]",
        "sample",
        _ORTH,
        "opt-in",
        default=False,
        description="permutation null of linear CKA (p-value and z-score)",
    ),
    # issue 29: opt-in measures (`--metrics all` or by name)
    _m(
        "cca_mean",
        "CCA",
        "similarity",
        "[0, 1]",
        "closed-form",
        _AFFINE,
        "n > rank_x + rank_y for unsaturated values",
        False,
        "mean canonical correlation ρ̄",
    ),
    _m(
        "cca_r2",
        "CCA",
        "similarity",
        "[0, 1]",
        "closed-form",
        _AFFINE,
        "n > rank_x + rank_y",
        False,
        "R²_CCA, mean squared canonical correlation",
    ),
    _m(
        "svcca",
        "CCA",
        "similarity",
        "[0, 1]",
        "closed-form",
        _ORTH,
        "",
        False,
        "SVCCA: CCA of the top PCA directions (99 % of the variance)",
    ),
    _m(
        "pwcca",
        "CCA",
        "similarity",
        "[0, 1]",
        "closed-form",
        ("feature permutation", "isotropic scaling", "translation", "sample permutation"),
        "",
        False,
        "PWCCA (Morcos et al. 2018), weighted by the base",
    ),
    _m(
        "shape_angular",
        "shape",
        "distance",
        "[0, π/2]",
        "closed-form",
        _ORTH,
        "",
        False,
        "generalized shape metric (Williams et al. 2021), angular, α = 0.5",
    ),
    _m(
        "rsa_spearman",
        "RSA",
        "similarity",
        "[−1, 1]",
        "sample",
        ("feature permutation", "isotropic scaling", "sample permutation"),
        "",
        False,
        "Spearman correlation of the correlation-distance RDMs",
    ),
    _m(
        "cknna",
        "neighbours",
        "similarity",
        "≤ 1",
        "sample",
        ("orthogonal", "isotropic scaling", "sample permutation"),
        "n > 10",
        False,
        "CKNNA (Huh et al. 2024), k = 10",
    ),
    _m(
        "jaccard_knn",
        "neighbours",
        "similarity",
        "[0, 1]",
        "sample",
        ("orthogonal", "isotropic scaling", "sample permutation"),
        "n > 10",
        False,
        "Jaccard similarity of the k-NN sets, k = 10",
    ),
    *(
        _m(
            f"{est}_dimension_{side}",
            "intrinsic dimension",
            "property",
            "(0, ∞)",
            "sample",
            _ORTH,
            need,
            False,
            f"{what} of the {side} features",
        )
        for est, need, what in _ID
        for side in ("base", "tuned")
    ),
    # the ratio tuned / base, as the report reads the ranks (1 = unchanged)
    *(
        _m(
            f"{est}_dimension_ratio",
            "intrinsic dimension",
            "property",
            "(0, ∞), 1 = unchanged",
            "sample",
            _ORTH,
            need,
            False,
            f"{what}, tuned / base",
        )
        for est, need, what in _ID
    ),
    _m(
        "energy_distance",
        "drift",
        "distance",
        "[0, ∞)",
        "sample",
        ("orthogonal of both", "translation of both", "sample permutation"),
        "p = q",
        False,
        "energy distance (Székely), V-statistic",
    ),
]

REGISTRY: dict[str, MetricInfo] = {m.name: m for m in _ENTRIES}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(m.family for m in _ENTRIES))
# prefixes that select several keys: "effective_rank" → _base and _tuned, "mmd" → both kernels
PREFIXES = (
    "effective_rank",
    "stable_rank",
    "numerical_rank",
    "participation_ratio",
    "cosine_similarity",
    "relative_shift",
    "mmd",
    "twonn_dimension",
    "mle_dimension",
    "cca",
)


def default_names() -> list[str]:
    return [m.name for m in _ENTRIES if m.default]


def all_names() -> list[str]:
    return list(REGISTRY)


def expand(metrics: Sequence[str] | None) -> list[str] | None:
    """``--metrics`` as metric names: None → None (the defaults); ``all`` → every metric;
    a prefix (``effective_rank``, ``mmd``) → the keys it starts; names as given.  Unknown
    names raise ``ValueError`` naming them and the known ones."""
    if metrics is None:
        return None
    out: list[str] = []
    unknown = []
    for m in metrics:
        if m == "all":
            out += all_names()
        elif m == "default":
            out += default_names()
        elif m in REGISTRY:
            out.append(m)
        elif m in PREFIXES:
            out += [k for k in REGISTRY if k.startswith(m)]
        else:
            unknown.append(m)
    if unknown:
        raise ValueError(
            f"--metrics: unknown metric name(s) {', '.join(map(repr, unknown))}; "
            f"known: all, default, {', '.join(REGISTRY)} (prefixes: "
            f"{', '.join(PREFIXES)}); `repspace metrics` lists them"
        )
    return list(dict.fromkeys(out))


def markdown_table(entries: Iterable[MetricInfo] | None = None) -> str:
    """The docs/metrics.md table (generated; a test fails when the doc differs)."""
    rows = [
        "| key | family | direction | range | computed | invariant to | needs | default |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in entries or _ENTRIES:
        rows.append(
            f"| `{m.name}` | {m.family} | {m.direction} | {m.range} | {m.kind} | "
            f"{', '.join(m.invariant_to)} | {m.requires or '—'} | "
            f"{'yes' if m.default else 'opt-in'} |"
        )
    return "\n".join(rows)
