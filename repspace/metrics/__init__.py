"""Representation-similarity, spectrum and drift metrics (the public metric API).

Functions take numpy arrays or torch tensors of shape (n_samples, n_features) in any
floating dtype (float16/bfloat16 are upcast) and validate their inputs at the boundary.
Streaming versions live in :mod:`repspace.statistics`.
"""
from repspace.metrics.bootstrap import BootstrapResult, bootstrap_ci
from repspace.metrics.cka import MinibatchCKA, cka_matrix, linear_cka, minibatch_cka, rbf_cka
from repspace.metrics.drift import (
    MMDResult,
    frechet_distance,
    mmd,
    mutual_knn_overlap,
    paired_drift,
    principal_angles,
    procrustes_distance,
    subspace_overlap,
)
from repspace.metrics.permutation import CKAPermutationResult, cka_permutation_test
from repspace.metrics.spectrum import (
    Spectrum,
    effective_rank,
    explained_variance,
    n_components,
    numerical_rank,
    participation_ratio,
    singular_values,
    spectrum,
    stable_rank,
)

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
