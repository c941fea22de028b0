"""Sizes a config claims, checked against the weights before anything is allocated.

A ``config.json`` decides what transformers builds: ``num_hidden_layers: 20000`` on a
3-layer checkpoint makes ``from_pretrained`` construct and randomly initialise 20 000 layers
(minutes of CPU, then gigabytes) before it finds that the files hold three; a ``hidden_size``
far wider than the stored matrices does the same in width.  The weights themselves say how
big the model is, and reading that costs next to nothing: a ``.safetensors`` file starts with
a JSON header listing every tensor's name and shape (a ``.bin`` in torch's zip format is
memory-mapped, not read).  So, before the model is built:

1. **layer counts** (``num_hidden_layers``, ``n_layer``, ``encoder_layers``, … at any depth
   of the config) may not exceed ``max(64, 4 × L)``, where ``L`` is one more than the
   largest index in any stored tensor's name (``encoder.layer.2.…`` → 3).  The slack keeps
   models that share one stored layer across many (ALBERT) loadable; it only bounds how
   long building the model's skeleton (step 2) can take;
2. **parameters**: the architecture is built on the meta device (no memory) and its
   parameter count compared with the number of values the weight files hold; more than
   ``2 × stored + 65 536`` is refused.  Under-counting cannot happen for a faithful
   checkpoint (every parameter is stored, tied ones once, fused or split ones in sum); the
   slack admits a small head that a load initialises (and ``--non-strict`` then reports).

Both refusals are one line naming ``config.json``, what it claims and what the weights hold.
Checkpoints stored quantized (packed values) and hub ids (no local files) are not checked.
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path

from repspace.checkpoints.errors import CheckpointError

__all__ = [
    "StoredWeights",
    "stored_weights",
    "check_layer_counts",
    "check_parameter_count",
    "LAYER_COUNT_KEYS",
]

# Config keys that count stacked layers (transformers' names across architectures).
LAYER_COUNT_KEYS = (
    "num_hidden_layers",
    "num_layers",
    "n_layer",
    "n_layers",
    "num_blocks",
    "encoder_layers",
    "decoder_layers",
    "num_encoder_layers",
    "num_decoder_layers",
    "text_layers",
    "vision_layers",
    "depth",
    "num_hidden_groups",
    "n_layers_per_block",
)
_WIDTH_KEYS = ("hidden_size", "d_model", "n_embd", "dim", "intermediate_size", "vocab_size")
MIN_LAYER_BOUND = 64  # a layer count up to this is always built (cheap on meta)
LAYER_FACTOR = 4
PARAM_FACTOR, PARAM_SLACK = 2, 1 << 16
_MAX_HEADER = 100 << 20  # a safetensors header larger than this is not a header
_INDEX = re.compile(r"(?:^|\.)(\d+)(?=\.|$)")


class StoredWeights:
    """What a checkpoint folder's weight files hold, read from their headers only."""

    def __init__(self, files: list[Path], shapes: dict[str, tuple[int, ...]]):
        self.files = files
        self.shapes = shapes

    @property
    def values(self) -> int:
        total = 0
        for shape in self.shapes.values():
            n = 1
            for d in shape:
                n *= d
            total += n
        return total

    @property
    def layers(self) -> int:
        """One more than the largest number in any tensor name's dotted path (0: none)."""
        best = -1
        for name in self.shapes:
            for m in _INDEX.finditer(name):
                best = max(best, int(m.group(1)))
        return best + 1

    @property
    def widths(self) -> list[int]:
        """The most common dimensions of the stored matrices (largest first, at most 3)."""
        dims = Counter(d for s in self.shapes.values() if len(s) == 2 for d in s)
        common = [d for d, _ in dims.most_common(3)]
        return sorted(common, reverse=True)

    def describe(self) -> str:
        width = "/".join(map(str, self.widths)) or "?"
        return (
            f"the weights ({', '.join(f.name for f in self.files[:2])}"
            f"{', …' if len(self.files) > 2 else ''}) hold {self.values:,} values in "
            f"{len(self.shapes)} tensors, {self.layers} numbered layer(s), widths {width}"
        )


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if not 0 < n <= _MAX_HEADER:
                return None
            header = json.loads(f.read(n).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None  # the loader reports unreadable weights, naming the file
    if not isinstance(header, dict):
        return None
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return None
        out[name] = tuple(shape)
    return out


def _torch_zip_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    import torch

    try:  # memory-mapped: the storages are not read; weights_only: no code
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - legacy (non-zip) format, payloads: the loader reports
        return None
    if not isinstance(state, dict):
        return None
    return {
        k: tuple(v.shape) for k, v in state.items() if isinstance(k, str) and hasattr(v, "shape")
    }


def _shards(folder: Path, index_name: str) -> list[Path] | None:
    from repspace.checkpoints.files import index_shards

    index = folder / index_name
    if not index.is_file():
        return None
    return index_shards(index)


def stored_weights(folder: str | Path) -> StoredWeights | None:
    """The tensors a model folder stores (names, shapes) as transformers would pick its files
    (safetensors first, sharded or not, then ``.bin``), or None when that cannot be told
    cheaply (no local weights, a legacy pickle, an unreadable header)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    candidates = []
    for single, index, reader in (
        ("model.safetensors", "model.safetensors.index.json", _safetensors_shapes),
        ("pytorch_model.bin", "pytorch_model.bin.index.json", _torch_zip_shapes),
    ):
        files = [folder / single] if (folder / single).is_file() else _shards(folder, index)
        if files:
            candidates.append((files, reader))
    if not candidates:
        return None
    files, reader = candidates[0]
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        got = reader(f) if f.is_file() else None
        if got is None:
            return None
        shapes.update(got)
    return StoredWeights(files, shapes) if shapes else None


def _counts(config, path: str = "") -> list[tuple[str, int]]:
    """``(dotted key, value)`` of every layer count in a config dict, at any depth."""
    out = []
    if not isinstance(config, dict):
        return out
    for key, value in config.items():
        where = f"{path}{key}"
        if key in LAYER_COUNT_KEYS and isinstance(value, int) and not isinstance(value, bool):
            out.append((where, value))
        elif isinstance(value, dict):
            out += _counts(value, where + ".")
    return out


def _sizes(config, path: str = "") -> list[str]:
    out = []
    if isinstance(config, dict):
        for key, value in config.items():
            if (
                key in _WIDTH_KEYS + LAYER_COUNT_KEYS
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                out.append(f"{path}{key} {value}")
            elif isinstance(value, dict):
                out += _sizes(value, f"{path}{key}.")
    return out


def check_layer_counts(config_file: Path, config: dict, stored: StoredWeights | None) -> None:
    """Step 1 (see the module docstring): from the config's JSON alone, before transformers
    reads it (some configs build per-layer lists as long as the count)."""
    if stored is None:
        return
    bound = max(MIN_LAYER_BOUND, LAYER_FACTOR * stored.layers)
    for key, value in _counts(config):
        if value > bound:
            raise CheckpointError(
                f"{config_file}: {key} is {value:,}, but {stored.describe()}; the config claims "
                f"far more layers than its weights (at most {bound} accepted): fix config.json "
                "or re-download the checkpoint"
            )
        if value < 0:
            raise CheckpointError(
                f"{config_file}: {key} is {value}; a layer count cannot be "
                "negative: fix config.json or re-download the checkpoint"
            )


def check_parameter_count(
    config_file: Path,
    config_obj,
    model_class,
    stored: StoredWeights | None,
    raw: dict | None = None,
) -> None:
    """Step 2: the architecture on the meta device against the values the files hold."""
    if stored is None or (raw or {}).get("quantization_config") is not None:
        return
    import torch
    import transformers

    try:
        with torch.device("meta"):
            model = (
                model_class(config_obj)
                if model_class is not transformers.AutoModel
                else model_class.from_config(config_obj)
            )
    except Exception:  # noqa: BLE001 - a config that cannot build: from_pretrained reports it
        return
    wanted = sum(p.numel() for p in model.parameters())
    if wanted > PARAM_FACTOR * stored.values + PARAM_SLACK:
        claims = ", ".join(_sizes(raw or {})[:6])
        raise CheckpointError(
            f"{config_file}: describes a {type(model).__name__} of {wanted:,} parameters"
            f"{f' ({claims})' if claims else ''}, but {stored.describe()}; the config claims far "
            "more layers or wider layers than its weights: fix config.json or re-download the "
            "checkpoint"
        )
