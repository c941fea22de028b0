"""Probe data for representation comparisons and its conversion into model inputs."""

from repspace.probe.inputs import make_batches, model_modalities
from repspace.probe.sources import BUILTIN_PROBES, ProbeSet, builtin_probe, load_probe

__all__ = [
    "BUILTIN_PROBES",
    "ProbeSet",
    "builtin_probe",
    "load_probe",
    "make_batches",
    "model_modalities",
]
