"""Which torch device a ``device`` argument means (one rule for capture, compare and training)."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "check_device_map"]

_DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


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
        raise ValueError(
            f"{what} {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
        ) from None
    if dev.type == "meta":
        raise ValueError(
            f"{what} {device!r}: the meta device holds shapes but no data, so no "
            "model can run on it; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
        )
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(
            f"{what} {device!r}: repspace does not run models on {dev.type!r} "
            "devices; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what} {device!r} requested but CUDA is not available; use 'cpu'")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"{what} {device!r} requested but MPS is not available; use 'cpu'")
    if dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ValueError(f"{what} {device!r} requested but XPU is not available; use 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"{what} {device!r}: this machine has {torch.cuda.device_count()} CUDA "
            f"device(s) (cuda:0 … cuda:{torch.cuda.device_count() - 1})"
        )
    return dev


def check_device_map(device_map, what: str = "--device-map") -> None:
    """A ``device_map`` accelerate can use: None, one of its strategies (auto, balanced,
    balanced_low_0, sequential), a device that is there, or (API) a dict of module name ->
    device; a one-line ValueError naming ``what`` otherwise (before any model is read)."""
    if device_map is None:
        return
    if isinstance(device_map, dict):
        for module, dev in device_map.items():
            if not isinstance(module, str):
                raise ValueError(f"{what}: keys must be module names; got {module!r}")
            if dev in ("cpu", "disk") or isinstance(dev, int) and not isinstance(dev, bool):
                continue
            resolve_device(dev, f"{what} entry {module!r}:")
        return
    if not isinstance(device_map, str) or not device_map:
        raise ValueError(
            f"{what} {device_map!r}: give auto, balanced, balanced_low_0, "
            "sequential or a device (cpu, cuda, cuda:N, mps)"
        )
    if device_map in _DEVICE_MAP_STRATEGIES:
        return
    try:
        torch.device(device_map)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{what} {device_map!r} is neither a placement strategy nor a device; "
            "give auto, balanced, balanced_low_0, sequential or a device (cpu, "
            "cuda, cuda:N, mps)"
        ) from None
    resolve_device(device_map, what)  # the meta device, a GPU that is not there
