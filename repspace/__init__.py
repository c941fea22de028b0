"""repspace: measure how far fine-tuning moves a pre-trained representation space.

Architecture (one folder per stage)::

    capture  ->  statistics  ->  metrics  ->  report
                 (streaming       (CKA, spectrum,
                  moments)         drift, bootstrap)

The public metric API lives in :mod:`repspace.metrics`; streaming accumulators in
:mod:`repspace.statistics`.
"""

__version__ = "0.1.0"
