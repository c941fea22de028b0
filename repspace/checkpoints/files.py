"""Which files of a checkpoint folder contribute weights, and what its configs may ask for.

Checked at the door (:func:`repspace.checkpoints.remote_code.refuse_remote_code`, before
transformers or peft reads anything), each a one-line :class:`CheckpointError` naming the
file:

- **shard indexes** (``model.safetensors.index.json``, ``pytorch_model.bin.index.json``, any
  ``*.index.json``): every shard they name must be a relative path inside the folder (no
  ``..``, no absolute path, no drive).  transformers would open ``../other/model.safetensors``
  as readily as a file beside the index, and a shard outside the folder is outside the
  checkpoint's hash: two different models would report the same sha256.  A shard *inside*
  is hashed whatever its suffix (:func:`weight_files`).  Symbolic links are followed and
  their content hashed (the Hugging Face cache links every file to a blob outside the
  snapshot folder);
- **image sizes** in processor configs (``size``, ``crop_size``, ``image_size``,
  ``max_image_size``, ``height`` / ``width`` / ``shortest_edge`` / ``longest_edge`` /
  ``max_pixels`` …): at most :data:`MAX_IMAGE_SIDE` pixels per side and
  :data:`MAX_IMAGE_PIXELS` per image; tokens per image (``image_seq_length``, …) at most
  :data:`MAX_IMAGE_TOKENS`.  A processor asking for 40 000 × 40 000 images would otherwise
  resize every probe image to 6.4 GB of floats and end in an out-of-memory message that
  names neither file nor size;
- **Hub kernels**: an ``attn_implementation`` / ``experts_implementation`` naming a Hub
  repository (``org/name``) makes transformers download and run compiled code; refused like
  ``auto_map``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from repspace._jsonfile import JSONFileError, read_json
from repspace.checkpoints.errors import CheckpointError

__all__ = [
    "index_shards",
    "check_indexes",
    "weight_files",
    "check_config_values",
    "MAX_IMAGE_SIDE",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_TOKENS",
    "PROCESSOR_FILES",
]

MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
MAX_IMAGE_TOKENS = 1 << 16
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "image_processor_config.json",
    "video_preprocessor_config.json",
    "feature_extractor_config.json",
)
_MAX_INDEX_BYTES = 64 << 20
_SIDE_KEYS = {
    "height",
    "width",
    "shortest_edge",
    "longest_edge",
    "max_height",
    "max_width",
    "min_height",
    "min_width",
    "image_size",
    "crop_size",
    "size",
    "max_image_size",
    "pad_size",
    "tile_size",
    "patch_size",
}
_PIXEL_KEYS = {"max_pixels", "min_pixels", "max_area", "min_area"}
_TOKEN_KEYS = {
    "image_seq_length",
    "num_image_tokens",
    "image_seq_len",
    "num_query_tokens",
    "max_image_tiles",
    "max_num_tiles",
    "num_crops",
    "max_crops",
}
_KERNEL_KEYS = {
    "attn_implementation",
    "_attn_implementation",
    "_attn_implementation_internal",
    "experts_implementation",
    "_experts_implementation",
    "_experts_implementation_internal",
}


def index_shards(index: Path) -> list[Path]:
    """The shard files a weights index names, each checked to lie inside its folder."""
    try:
        data = read_json(index, max_bytes=_MAX_INDEX_BYTES)
    except JSONFileError as exc:
        if exc.size is not None:
            raise CheckpointError(
                f"{index}: {exc.size} bytes is too large for a weights index; check the checkpoint"
            ) from None
        raise CheckpointError(
            f"{index}: not a readable weights index ({exc.problem}); "
            "re-download or re-save the checkpoint"
        ) from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointError(
            f"{index}: a weights index must hold a 'weight_map' object "
            "(tensor name -> shard file); re-download or re-save the checkpoint"
        )
    shards: list[Path] = []
    for name in dict.fromkeys(weight_map.values()):
        if not isinstance(name, str) or not name or "\0" in name:
            raise CheckpointError(f"{index}: shard {name!r} is not a file name")
        posix, windows = PurePosixPath(name), PureWindowsPath(name)
        if (
            posix.is_absolute()
            or windows.is_absolute()
            or windows.drive
            or ".." in posix.parts
            or ".." in windows.parts
        ):
            raise CheckpointError(
                f"{index}: refused — shard {name!r} lies outside the checkpoint folder; a "
                "checkpoint's shards must sit inside it (they are what its sha256 covers): move "
                "the shard into the folder and name it relative to the index"
            )
        shards.append(index.parent / name)
    return shards


def check_indexes(folder: Path) -> None:
    """Every ``*.index.json`` of ``folder`` names only shards inside it."""
    if folder.is_dir():
        for index in sorted(folder.glob("*.index.json")):
            if index.is_file():
                index_shards(index)


def weight_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` (any depth) that determine a model: those with one of
    ``suffixes``, and every shard an index names, whatever its suffix."""
    found = {q for q in folder.rglob("*") if q.is_file() and q.suffix in suffixes}
    for index in folder.glob("*.index.json"):
        if index.is_file():
            found.update(s for s in index_shards(index) if s.is_file())
    return sorted(found)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check_sizes(obj, source: Path, path: str = "") -> None:
    if isinstance(obj, list):
        for i, v in enumerate(obj[:64]):
            _check_sizes(v, source, f"{path}[{i}]")
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        where = f"{path}{key}"
        if isinstance(value, list) and key in _SIDE_KEYS | _PIXEL_KEYS | _TOKEN_KEYS:
            numbers = [v for v in value[:64] if _number(v) is not None]
            value = max(numbers, key=abs) if numbers else None  # [height, width]: the worst
        if isinstance(value, (dict, list)):
            _check_sizes(value, source, where + ("." if isinstance(value, dict) else ""))
            continue
        n = _number(value)
        if n is None:
            continue
        if key in _SIDE_KEYS and n > MAX_IMAGE_SIDE:
            limit, what = MAX_IMAGE_SIDE, "pixels per side"
        elif key in _PIXEL_KEYS and n > MAX_IMAGE_PIXELS:
            limit, what = MAX_IMAGE_PIXELS, "pixels per image"
        elif key in _TOKEN_KEYS and n > MAX_IMAGE_TOKENS:
            limit, what = MAX_IMAGE_TOKENS, "tokens per image"
        elif key in _SIDE_KEYS | _PIXEL_KEYS | _TOKEN_KEYS and n < 0:
            raise CheckpointError(
                f"{source}: {where} is {value!r}; a size cannot be negative: "
                "fix the processor config or re-download the checkpoint"
            )
        else:
            continue
        raise CheckpointError(
            f"{source}: {where} is {value!r}, beyond the {limit:,} {what} repspace accepts; "
            "every probe image would be resized to it (memory grows with its square): fix the "
            "processor config or re-download the checkpoint"
        )


def _check_kernels(obj, source: Path, depth: int = 0) -> None:
    if depth > 64 or not isinstance(obj, dict):
        return
    for key, value in obj.items():
        if key in _KERNEL_KEYS:
            names = value.values() if isinstance(value, dict) else [value]
            for name in names:
                if isinstance(name, str) and "/" in name:
                    raise CheckpointError(
                        f"{source}: refused — {key} {name!r} names a Hub kernel repository, "
                        "whose compiled code transformers would download and run; repspace "
                        "runs no code shipped with a checkpoint: remove the entry (or set it "
                        "to eager / sdpa)"
                    )
        if isinstance(value, dict):
            _check_kernels(value, source, depth + 1)


def check_config_values(obj, source: Path) -> None:
    """The checks of one parsed config file (see the module docstring)."""
    _check_kernels(obj, source)
    if source.name in PROCESSOR_FILES or (
        source.name.endswith("config.json")
        and any(p in source.name for p in ("processor", "feature_extractor"))
    ):
        _check_sizes(obj, source)
