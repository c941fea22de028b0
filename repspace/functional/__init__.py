"""Closed forms: pure functions of sufficient statistics (no accumulators, no models).

The floor below both :mod:`repspace.statistics` (whose accumulators ``compute()`` through
these functions) and :mod:`repspace.metrics` (the array-level public API), as torchmetrics
keeps ``functional/`` below its ``Metric`` classes.  Inputs are the centred moments of
:mod:`repspace.functional.centred`, a :class:`~repspace.functional.spectrum.Spectrum`, or
plain tensors and arrays.

* :mod:`~repspace.functional.centred` -- the centred-moment types;
* :mod:`~repspace.functional.kernels` -- Gram sums, HSIC, the CKA ratio;
* :mod:`~repspace.functional.cka` -- linear CKA (biased and debiased) from moments;
* :mod:`~repspace.functional.spectrum` -- singular values and the four ranks;
* :mod:`~repspace.functional.drift` -- Fréchet, linear MMD, Procrustes, principal angles;
* :mod:`~repspace.functional.summary` -- every closed form of a layerwise accumulator.
"""
