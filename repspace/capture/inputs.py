"""Batches in, checked and hashed: input-key validation, batching, device, data hash.

``inputs`` to the runner is either a mapping of full tensors ``{key: (n, ...)}``
(split into ``batch_size`` chunks in order) or any iterable of such mappings
(``DataLoader``, generator, list) used as given.  Order is never shuffled.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from repspace.devices import resolve_device  # re-exported: capture's public API had it
from repspace.layer_table import unwrap_model

__all__ = ["batch_hash", "batch_rows", "check_input_keys", "iter_batches", "resolve_device"]

# Flattened-patch image inputs (Qwen2-VL): their rows are patches, not samples; the grid
# tensor (one row per image, t*h*w patches each) says which rows belong to which image.
_PATCH_GRIDS = {"pixel_values": "image_grid_thw", "pixel_values_videos": "video_grid_thw"}

# Keyword arguments HF forwards accept through **kwargs (TransformersKwargs & co.).
_COMMON_KWARGS = {
    "output_hidden_states",
    "output_attentions",
    "return_dict",
    "use_cache",
    "interpolate_pos_encoding",
    "cache_position",
    "task_ids",
}


def check_input_keys(model: nn.Module, batch: Mapping[str, object]) -> None:
    """Raise ``ValueError`` if ``batch`` has keys the model's forward does not take,
    or lacks one it requires."""
    if not isinstance(batch, Mapping) or not batch:
        raise ValueError(
            f"each batch must be a non-empty mapping of model inputs "
            f"(e.g. {{'input_ids': ..., 'attention_mask': ...}}); got {type(batch).__name__}"
        )
    root = unwrap_model(model)
    try:
        params = inspect.signature(root.forward).parameters
    except (TypeError, ValueError):
        return
    named = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    allowed = named | (_COMMON_KWARGS if takes_kwargs else set())
    unknown = sorted(k for k in batch if k not in allowed)
    if unknown:
        raise ValueError(
            f"{type(root).__name__}.forward does not take input(s) {unknown}; it "
            f"takes {sorted(named)}; rename or drop those keys"
        )
    required = [
        n
        for n, p in params.items()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [n for n in required if n not in batch]
    if missing:
        raise ValueError(
            f"{type(root).__name__}.forward requires input(s) {missing}; batch has {sorted(batch)}"
        )
    if not any(torch.is_tensor(v) for v in batch.values()):
        raise ValueError(
            f"batch {sorted(batch)} holds no tensors; tokenize/process the data "
            "with return_tensors='pt' first"
        )


def batch_rows(batch: Mapping[str, object]) -> int:
    """Number of samples in a batch (leading dim of its tensors, which must agree)."""
    sizes = {
        k: v.shape[0]
        for k, v in batch.items()
        if torch.is_tensor(v) and v.ndim > 0 and not _flattened(batch, k)
    }
    if not sizes:
        raise ValueError(f"batch {sorted(batch)} holds no batched tensors")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"inputs disagree on the batch size: {sizes}")
    return next(iter(sizes.values()))


def _flattened(batch: Mapping[str, object], key: str) -> bool:
    grid = batch.get(_PATCH_GRIDS.get(key, ""))
    return torch.is_tensor(grid) and torch.is_tensor(batch[key]) and batch[key].ndim == 2


def _slice(inputs: Mapping[str, object], key: str, s: int, e: int):
    """Rows ``s:e`` of ``inputs[key]``: the samples' own patches for flattened patch inputs."""
    v = inputs[key]
    if not (torch.is_tensor(v) and v.ndim > 0):
        return v
    if not _flattened(inputs, key):
        return v[s:e]
    per_image = inputs[_PATCH_GRIDS[key]].prod(-1)
    if len(per_image) != batch_rows(inputs):
        raise ValueError(
            f"{key} holds flattened patches of {len(per_image)} images for "
            f"{batch_rows(inputs)} samples; pass batches of one image per sample "
            "(an iterable of batch mappings) instead of one mapping"
        )
    bounds = torch.cat([per_image.new_zeros(1), per_image.cumsum(0)])
    return v[int(bounds[s]) : int(bounds[min(e, len(per_image))])]


def iter_batches(
    inputs: Mapping[str, object] | Iterable[Mapping[str, object]], batch_size: int
) -> tuple[Iterator[Mapping[str, object]], int | None]:
    """``(batches, number of batches or None)``: split a mapping, or pass an iterable."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    if isinstance(inputs, Mapping):
        n = batch_rows(inputs)
        starts = range(0, n, batch_size)

        def gen():
            for s in starts:
                yield {k: _slice(inputs, k, s, s + batch_size) for k in inputs}

        return gen(), len(starts)
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
        raise ValueError(
            "inputs must be a mapping of tensors or an iterable of batch mappings; "
            f"got {type(inputs).__name__}"
        )
    try:
        total = len(inputs)  # type: ignore[arg-type]
    except TypeError:
        total = None
    return iter(inputs), total


def batch_hash(batch: Mapping[str, object]) -> str:
    """SHA-256 over the batch's keys, dtypes, shapes and bytes (order-independent keys)."""
    h = hashlib.sha256()
    for key in sorted(batch):
        v = batch[key]
        h.update(key.encode())
        if torch.is_tensor(v):
            t = v.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(v).encode())
    return h.hexdigest()


def chain_hash(previous: str, current: str) -> str:
    """Running hash of the batch sequence so far (order-sensitive)."""
    return hashlib.sha256((previous + current).encode()).hexdigest()
