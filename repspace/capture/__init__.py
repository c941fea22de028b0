"""Capture hidden states of chosen layers of a base model and its tuned versions.

Stages: :mod:`repspace.layer_table` / :mod:`.model_view` / :mod:`.presets` /
:mod:`.selection` (which layers, canonical names shared by base and PEFT models, resolved
once per model) -> :mod:`.hooks` (``LayerCapture`` context
manager) -> :mod:`.tokens` / :mod:`.pooling` (masks, virtual tokens, pooling) ->
:mod:`.sinks` / :mod:`.disk` (accumulator, memory, sharded safetensors) driven by
:mod:`.runner` (``capture``, ``capture_paired``).  See ``docs/capture.md``.
"""

from repspace.capture.disk import CaptureReader, DiskSink, load_capture
from repspace.capture.hooks import LayerCapture, hidden_tensor

# not the function model_view: it would shadow the submodule repspace.capture.model_view
from repspace.capture.model_view import ModelView, views_resolved_once
from repspace.layer_table import (
    canonical_modules,
    layer_names,
    register_adapter_component,
    unwrap_model,
)
from repspace.capture.pooling import POOLING_MODES, Pooling, pool_states
from repspace.capture.presets import PRESETS, block_lists, resolve_preset
from repspace.capture.runner import AdapterInactiveWarning, capture, capture_paired, describe_model
from repspace.capture.selection import resolve_layers, resolve_paired_layers
from repspace.capture.sinks import AccumulatorSink, CapturedBatch, MemorySink

__all__ = [
    "POOLING_MODES",
    "PRESETS",
    "AccumulatorSink",
    "AdapterInactiveWarning",
    "CaptureReader",
    "CapturedBatch",
    "DiskSink",
    "LayerCapture",
    "MemorySink",
    "ModelView",
    "Pooling",
    "block_lists",
    "canonical_modules",
    "capture",
    "capture_paired",
    "describe_model",
    "hidden_tensor",
    "layer_names",
    "load_capture",
    "pool_states",
    "register_adapter_component",
    "resolve_layers",
    "resolve_paired_layers",
    "resolve_preset",
    "unwrap_model",
    "views_resolved_once",
]
