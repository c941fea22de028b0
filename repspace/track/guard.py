"""A measurement that leaves no trace on the training run it interrupts.

Inside :func:`untouched` the model is in eval mode (dropout off) and autograd is off; on the
way out, whatever happened inside, every module's own training flag is put back (not a
blanket ``train()``: frozen parts a user keeps in eval stay there) and every random number
generator is restored — Python's ``random``, NumPy's global state, torch's CPU generator and
every initialised CUDA device's — so the training run draws exactly the numbers it would
have drawn without the measurement (dropout masks, data order, noise): its weights and
losses are bit-identical.  Generators that training code creates itself (a
``torch.Generator`` of a sampler) are never touched by a measurement.

Mixed-precision training (``Trainer(bf16=True)``, ``accelerate`` with ``mixed_precision``)
wraps the model's ``forward`` in ``torch.autocast`` and keeps the original beside it
(``_original_forward``); inside :func:`untouched` the original runs, so a measurement is
in the model's own dtype — the numbers `repspace compare` gives for the saved checkpoint —
and the wrapper is put back afterwards.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["rng_state", "set_rng_state", "untouched"]


def _cuda_ready() -> bool:
    # asking for the states of an uninitialised CUDA would initialise it (and allocate memory)
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _mps_ready() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available() and hasattr(torch, "mps"))


def rng_state() -> dict:
    """Every global generator's state: python, numpy, torch CPU, CUDA (per device), MPS."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if _cuda_ready():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if _mps_ready():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Put back what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state:
        torch.mps.set_rng_state(state["mps"])


@contextlib.contextmanager
def untouched(*models: nn.Module) -> Iterator[None]:
    """Eval mode and ``torch.no_grad()`` inside; training flags and RNG states restored after."""
    flags = {m: m.training for model in models for m in model.modules()}
    wrapped = {
        m: m.__dict__["forward"]
        for m in flags
        if "_original_forward" in m.__dict__ and "forward" in m.__dict__
    }
    state = rng_state()
    try:
        for module in wrapped:  # accelerate's autocast wrapper off: the model's own dtype
            module.forward = module.__dict__["_original_forward"]
        with torch.no_grad():
            for model in models:
                model.eval()
            yield
    finally:
        for module, forward in wrapped.items():
            module.forward = forward
        for module, flag in flags.items():
            module.training = flag
        set_rng_state(state)
