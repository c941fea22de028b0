"""`repspace compare --plan --calibrate`: time the capture on two real batches, extrapolate.

Unlike the plan this loads the weights, as compare would (same loader, dtype, device),
builds two batches of the probe (``--batch-size`` samples each) and runs every model of
the comparison on them with the capture hooks of the chosen layers.  The second batch is
the one timed (the first pays one-off costs); the capture estimate is that forward time
per batch, plus the input preparation, times the number of batches and the base's extra
forwards per pass (``--tuned-per-pass``).  Loading is measured once.  The metrics are not
extrapolated: their cost depends on n, the widths and each layer's route.
"""

from __future__ import annotations

import math
import time
import warnings

import torch

__all__ = ["calibrate", "calibration_text"]


def calibrate(base: str, tuned: list[str], s, num_samples: int) -> dict:
    """Seconds to load, and to capture one batch, for ``compare(base, tuned, s)``; the
    capture time extrapolated to ``num_samples`` samples."""
    from repspace.capture import LayerCapture
    from repspace.capture.task_heads import shared_layers
    from repspace.compare.api import _load, quantization_of
    from repspace.compare.same_inputs import probe_processor
    from repspace.devices import resolve_device
    from repspace.probe import load_probe, make_batches

    b = s.batch_size
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real run says what needs saying
        base_ck, tuned_cks, capture = _load(base, tuned, s)
    load = time.perf_counter() - started
    probe = load_probe(s.probe, num_samples=min(2 * b, num_samples), seed=s.seed)
    processor = probe_processor(base_ck, tuned_cks, probe.texts)
    started = time.perf_counter()
    batches = list(
        make_batches(probe, base_ck.model, processor, batch_size=b, max_length=s.max_length)
    )
    inputs = (time.perf_counter() - started) / len(batches)
    models = [t.model for t in tuned_cks]
    if capture["mode"] != "adapter_disabled":
        models.insert(0, base_ck.model)  # else the base is a tuned model's forward again
    _, cores, names = shared_layers(models[0], models, s.layers, warn=False)
    device = None if s.device_map is not None or quantization_of(s) else resolve_device(s.device)
    forward = 0.0
    for model, core in zip(models, cores):
        if device is not None:
            model.to(device)
        dev = next(model.parameters()).device
        with LayerCapture(core, names, early_stop=True) as cap, torch.no_grad():
            for i, batch in enumerate(batches[:2]):
                on_dev = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
                t = time.perf_counter()
                cap.forward(on_dev)
                if i == len(batches[:2]) - 1:
                    forward += time.perf_counter() - t
    sides = len(models)
    if capture["mode"] == "adapter_disabled":
        forward *= 2  # the base side runs the same model with the adapter off
        sides += 1
    held = min(len(tuned), s.tuned_per_pass or len(tuned))
    passes = math.ceil(len(tuned) / held)
    per_batch = inputs + forward + (passes - 1) * forward / sides  # the base again per pass
    batches_n = math.ceil(num_samples / b)
    return {
        "batch_size": b,
        "batches": batches_n,
        "load": load,
        "inputs_per_batch": inputs,
        "forward_per_batch": forward,
        "capture": batches_n * per_batch,
    }


def calibration_text(c: dict) -> list[str]:
    return [
        f"calibration (models loaded, two batches of {c['batch_size']} captured, the "
        f"second timed): load {c['load']:.1f} s, per batch {c['inputs_per_batch']:.2f} s "
        f"inputs + {c['forward_per_batch']:.2f} s forwards",
        f"estimated capture: ≈ {c['capture']:.0f} s for {c['batches']} batches, plus the "
        "load; the metrics come on top and are not estimated (they depend on n, the "
        "widths and each layer's route)",
    ]
