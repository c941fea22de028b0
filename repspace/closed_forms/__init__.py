"""Closed forms: pure functions of sufficient statistics (no accumulators, no models).

The floor below both :mod:`repspace.statistics` (whose accumulators ``compute()`` through
these functions) and :mod:`repspace.metrics` (the array-level public API).

Named ``functional`` before issue 30.  torchmetrics, which the docs cite, uses
``functional`` for its array API -- repspace's :mod:`repspace.metrics` -- so a reader who
knows torchmetrics looked for the array functions here.  No alias is kept: the old name is
the trap itself, and the public array API was always :mod:`repspace.metrics`.  Inputs are the centred moments of
:mod:`repspace.closed_forms.centred`, a :class:`~repspace.closed_forms.spectrum.Spectrum`, or
plain tensors and arrays.

* :mod:`~repspace.closed_forms.centred` -- the centred-moment types;
* :mod:`~repspace.closed_forms.kernels` -- Gram sums, HSIC, the CKA ratio;
* :mod:`~repspace.closed_forms.cka` -- linear CKA (biased and debiased) from moments;
* :mod:`~repspace.closed_forms.spectrum` -- singular values and the four ranks;
* :mod:`~repspace.closed_forms.drift` -- Fréchet, linear MMD, Procrustes, principal angles;
* :mod:`~repspace.closed_forms.summary` -- every closed form of a layerwise accumulator.
"""
