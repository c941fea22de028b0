"""Which torch device a ``device`` argument means (one rule for capture, compare and training)."""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(device: str | torch.device | None, what: str = "device") -> torch.device:
    """``None``/``"auto"`` -> cuda, then mps, then cpu; a device that is not there, or a string
    that is not a device, -> a one-line ValueError naming ``what`` (e.g. ``--device``)."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{what} {device!r} is not a torch device; use 'cpu', 'cuda', "
                         "'cuda:N', 'mps' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what} {device!r} requested but CUDA is not available; use 'cpu'")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"{what} {device!r} requested but MPS is not available; use 'cpu'")
    return dev
