"""Refuse checkpoints that ask transformers to run code shipped with them.

A ``config.json`` (or tokenizer / processor config) with an ``auto_map`` names Python
files in the checkpoint that transformers would import to build the model: loading it
means running a stranger's code.  Every repspace loader call passes
``trust_remote_code=False`` (so transformers refuses instead of asking "run the custom
code? [y/N]" on stdin), and :func:`refuse_remote_code` rejects such a folder *before* any
transformers call, with one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from repspace._jsonfile import JSONFileError, read_json
from repspace.checkpoints.errors import CheckpointError
from repspace.checkpoints.precision import MAX_CONFIG_BYTES, config_error

__all__ = ["CONFIG_FILES", "refuse_remote_code", "check_model_class", "model_class_of"]

# Files transformers reads an ``auto_map`` from (model, tokenizer, processors).
CONFIG_FILES = (
    "config.json",
    "tokenizer_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "image_processor_config.json",
    "feature_extractor_config.json",
    "video_preprocessor_config.json",
    "adapter_config.json",
)


def _config_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".json" else []
    if not path.is_dir():
        return []
    named = [path / n for n in CONFIG_FILES]
    # Any other *config*.json too: transformers' processors read several names.
    extra = sorted(p for p in path.glob("*config*.json") if p not in named)
    return [p for p in (*named, *extra) if p.is_file()]


def _remote_code_keys(obj) -> list[str]:
    if not isinstance(obj, dict):
        return []
    found = [k for k in ("auto_map", "custom_pipelines") if obj.get(k)]
    # Processors nest their parts' configs (e.g. {"image_processor": {...}}).
    for v in obj.values():
        if isinstance(v, dict) and v.get("auto_map"):
            found.append("auto_map")
    return found


def _refuse_special_files(path: Path) -> None:
    """A named pipe, socket or device where a config or weights file should be would make a
    reader block forever (or read without end): refused by name before anything opens it."""
    import stat

    entries = list(path.iterdir()) if path.is_dir() else [path] if os.path.lexists(path) else []
    for entry in entries:
        try:
            mode = entry.stat().st_mode  # follows symlinks: what a reader would open
        except OSError:
            continue  # a dangling link: the reader that needs it reports it
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise CheckpointError(
                f"{entry}: not a regular file (a pipe, socket or device); "
                "a checkpoint holds only files and folders"
            )


def refuse_remote_code(spec: str | Path) -> None:
    """Raise :class:`CheckpointError` if a local checkpoint (folder or config.json) would make
    transformers import code from it (``auto_map``, a Hub kernel), holds a pipe / device that
    would hang its reader, a shard index pointing outside the folder, a processor asking for
    absurd image sizes (:mod:`repspace.checkpoints.files`) or an adapter regex that backtracks
    (:mod:`repspace.checkpoints.patterns`); a no-op for anything that is not on disk (hub ids:
    ``trust_remote_code=False`` makes transformers refuse them itself)."""
    from repspace.checkpoints.files import check_config_values, check_indexes

    path = Path(spec)
    _refuse_special_files(path)
    check_indexes(path)  # shards named outside the folder: refused (outside its hash)
    for f in _config_files(path):
        try:
            obj = read_json(f, max_bytes=MAX_CONFIG_BYTES)
        except JSONFileError as exc:
            if exc.size is not None or f.name == "config.json" or f == path:
                raise config_error(f, exc) from None
            continue  # other loaders report their own unreadable files
        keys = _remote_code_keys(obj)
        if keys:
            raise CheckpointError(
                f"{f}: refused — its {keys[0]!r} asks transformers to import Python code shipped "
                "with the checkpoint, which repspace never runs; use a checkpoint whose "
                "architecture is built into transformers (or remove the entry if you have "
                "audited the code and the model class exists in transformers)"
            )
        check_config_values(obj, f)  # Hub kernels, absurd image sizes
        if f.name == "adapter_config.json" and isinstance(obj, dict):
            from repspace.checkpoints.patterns import check_adapter_patterns

            check_adapter_patterns(obj, f)  # before any model loads: peft would hang on it


def check_model_class(name, source: str):
    """The transformers model class ``name`` (from ``architectures`` or --model-class), or a
    one-line refusal when it names anything else (a function, a pipeline, a tokenizer)."""
    import transformers

    if not isinstance(name, str) or not name.isidentifier():
        raise CheckpointError(
            f"{source}: architectures entry {name!r} is not a class name; fix config.json"
        )
    cls = getattr(transformers, name, None)
    if cls is None:
        return None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise CheckpointError(
            f"{source}: {name!r} is not a transformers model class; fix "
            "`architectures` in config.json (or --model-class)"
        )
    return cls


# adapter_config.json fields whose type peft trusts (a string rank crashes deep inside it;
# an absurd one allocates until the machine dies).
_ADAPTER_INTS = (
    "r",
    "lora_alpha",
    "num_virtual_tokens",
    "num_transformer_submodules",
    "num_attention_heads",
    "num_layers",
    "token_dim",
    "encoder_hidden_size",
)
_MAX_ADAPTER_INT = 1 << 16


def check_adapter_config(cfg, source: Path) -> None:
    """One-line refusal of an adapter_config.json peft would crash on (or choke the machine)."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{source}: must hold a JSON object; got {type(cfg).__name__}")
    for key in ("base_model_name_or_path", "peft_type", "task_type"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise CheckpointError(
                f"{source}: {key!r} must be a string; got "
                f"{type(cfg[key]).__name__}; fix or re-save the adapter"
            )
    if str(cfg.get("peft_type", "")).upper() == "XLORA":
        # X-LoRA's config names further adapter folders to load, anywhere on disk.
        raise CheckpointError(
            f"{source}: X-LoRA adapters load other adapter folders named in "
            "their config; repspace does not follow such references"
        )
    tok = cfg.get("tokenizer_name_or_path")
    if tok is not None:
        if not isinstance(tok, str):
            raise CheckpointError(f"{source}: 'tokenizer_name_or_path' must be a string")
        refuse_remote_code(tok)  # peft loads this tokenizer (prompt-tuning text init)
    from repspace.checkpoints.patterns import check_adapter_patterns

    check_adapter_patterns(cfg, source)  # regexes peft would match: bounded, or refused
    for key in _ADAPTER_INTS:
        v = cfg.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= _MAX_ADAPTER_INT:
            raise CheckpointError(
                f"{source}: {key!r} is {v!r}; expected a number between 1 and "
                f"{_MAX_ADAPTER_INT}; fix or re-save the adapter"
            )


def model_class_of(config, source: str):
    """The transformers class a config's ``architectures`` names (checked by
    :func:`check_model_class`: a model class, never code), else ``AutoModel``."""
    import transformers

    archs = getattr(config, "architectures", None) or []
    if not isinstance(archs, (list, tuple)):
        raise CheckpointError(
            f"{source}: `architectures` must be a list of class names; got {type(archs).__name__}"
        )
    for arch in archs:
        cls = check_model_class(arch, source)  # a model class, never a function or pipeline
        if cls is not None:
            return cls
    return transformers.AutoModel
