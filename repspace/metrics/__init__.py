"""Representation-similarity, spectrum and drift metrics (the public metric API).

Functions take numpy arrays or torch tensors of shape (n_samples, n_features) in any
floating dtype (float16/bfloat16 are upcast) and validate their inputs at the boundary.
Streaming versions live in :mod:`repspace.statistics`.

The names below are imported on first use (PEP 562): the metric registry
(:mod:`repspace.metrics.registry`, read to check ``--metrics``) needs no torch.
"""

from __future__ import annotations

import sys
import types

from repspace._lazy import lazy_attributes

# name -> module that defines it (loaded on first use)
_LAZY = {
    "BootstrapResult": "repspace.metrics.bootstrap",
    "bootstrap_ci": "repspace.metrics.bootstrap",
    **dict.fromkeys(
        ["MinibatchCKA", "cka_matrix", "linear_cka", "minibatch_cka", "rbf_cka"],
        "repspace.metrics.cka",
    ),
    **dict.fromkeys(
        [
            "MMDResult",
            "frechet_distance",
            "mmd",
            "mutual_knn_overlap",
            "paired_drift",
            "principal_angles",
            "procrustes_distance",
            "subspace_overlap",
        ],
        "repspace.metrics.drift",
    ),
    "CKAPermutationResult": "repspace.metrics.permutation",
    "cka_permutation_test": "repspace.metrics.permutation",
    **dict.fromkeys(
        [
            "Spectrum",
            "effective_rank",
            "explained_variance",
            "n_components",
            "numerical_rank",
            "participation_ratio",
            "singular_values",
            "spectrum",
            "stable_rank",
        ],
        "repspace.metrics.spectrum",
    ),
}

__all__ = [
    "BootstrapResult",
    "CKAPermutationResult",
    "MMDResult",
    "MinibatchCKA",
    "Spectrum",
    "bootstrap_ci",
    "cka_matrix",
    "cka_permutation_test",
    "effective_rank",
    "explained_variance",
    "frechet_distance",
    "linear_cka",
    "minibatch_cka",
    "mmd",
    "mutual_knn_overlap",
    "n_components",
    "numerical_rank",
    "paired_drift",
    "participation_ratio",
    "principal_angles",
    "procrustes_distance",
    "rbf_cka",
    "singular_values",
    "spectrum",
    "stable_rank",
    "subspace_overlap",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


class _Package(types.ModuleType):
    """``repspace.metrics.spectrum`` is the function, as when this package imported it
    eagerly: importing the submodule of that name sets the package attribute to the module
    (after the submodule ran), which is turned back into the function here."""

    def __setattr__(self, name, value):
        if name == "spectrum" and isinstance(value, types.ModuleType):
            value = value.spectrum
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
