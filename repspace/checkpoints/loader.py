"""Load any checkpoint a user points at: detect its kind, then load it safely.

Kinds, detected in this order:

- ``repspace``: a folder with ``repspace_manifest.json`` (repspace's training output);
- ``peft``: a PEFT adapter folder (``adapter_config.json``); its base comes from the
  config's ``base_model_name_or_path`` or from ``base=``;
- ``hf``: a Hugging Face model folder (``config.json``);
- ``state_dict``: a single weights file (``.safetensors``, or ``.ckpt``/``.pt``/``.pth``/
  ``.bin`` read with ``weights_only=True``) applied onto the base's architecture (or the
  architecture in ``config=``);
- ``hub``: anything else shaped like ``org/name``: a model id on the Hugging Face hub
  (needs a network or a warm cache; this machine is offline).

The spec ``"embedded"`` (when no such local folder exists) names repspace's embedded default
model, a tiny BLIP pre-trained on the built-in shapes world and shipped in the package.
"""

from __future__ import annotations

import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from repspace._jsonfile import JSONFileError, read_json
from repspace.checkpoints.errors import CheckpointError
from repspace.checkpoints.hashing import checkpoint_sha256
from repspace.checkpoints.hf_format import load_saved_format
from repspace.checkpoints.precision import check_dtype, config_dtype, read_config, resolve_dtype
from repspace.checkpoints.quantization import (
    QUANT_FLAGS,
    bnb_config,
    compute_dtype_of,
    qlora_reason,
    refuse_stored_quantization,
)
from repspace.checkpoints.remote_code import (
    check_adapter_config,
    model_class_of,
    refuse_remote_code,
)
from repspace.checkpoints.state_dict import STATE_DICT_SUFFIXES, apply_state_dict, read_state_dict

__all__ = [
    "LoadedCheckpoint",
    "detect_kind",
    "load_checkpoint",
    "load_hf_model",
    "preflight_checkpoints",
    "base_chain",
    "MAX_BASE_DEPTH",
    "check_sizes",
    "MANIFEST_NAME",
    "EMBEDDED",
    "register_manifest_loader",
    "resolve_spec",
    "adapter_config",
    "local_config",
]

MANIFEST_NAME = "repspace_manifest.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_MANIFEST_LOADERS: dict[str, Any] = {}
RUN_FORMATS = ("repspace.trainable", "repspace.full")  # written by repspace.training.runs
EMBEDDED = "embedded"


def resolve_spec(spec: str) -> str:
    """``"embedded"`` -> the shipped model's folder; anything else unchanged."""
    if spec == EMBEDDED and not Path(spec).exists():
        from repspace.models import embedded_path

        return str(embedded_path())
    return spec


@dataclass
class LoadedCheckpoint:
    """A loaded model with what identifies it in a report."""

    spec: str  # what the user passed
    name: str  # short display name (folder or file stem)
    kind: str  # repspace | peft | hf | state_dict | hub
    model: torch.nn.Module
    processor: Any = None  # tokenizer or multimodal processor, when one ships
    sha256: str | None = None
    base: str | None = None  # the base checkpoint it was applied onto, if any
    notes: list[str] = field(default_factory=list)
    manifest: dict | None = None


def register_manifest_loader(weights_format: str, fn) -> None:
    """Let a method family load its own repspace checkpoints.

    ``fn(path, manifest, base_loader, base) -> LoadedCheckpoint``: ``base_loader(spec)`` loads
    a checkpoint with the caller's dtype; ``base`` is the user's ``--base-override`` (API ``base_override``) or None.
    """
    _MANIFEST_LOADERS[weights_format] = fn


def detect_kind(spec: str) -> str:
    p = Path(spec)
    if p.is_dir():
        for marker, kind in (
            (MANIFEST_NAME, "repspace"),
            ("adapter_config.json", "peft"),
            ("config.json", "hf"),
        ):
            if (p / marker).is_file():
                return kind
        raise CheckpointError(
            f"{spec}: a folder without config.json, adapter_config.json or "
            f"{MANIFEST_NAME}; point at a model or adapter folder"
        )
    if p.is_file():
        if p.suffix.lower() in STATE_DICT_SUFFIXES:
            return "state_dict"
        raise CheckpointError(
            f"{spec}: unknown checkpoint file type {p.suffix!r}; expected "
            f"{', '.join(STATE_DICT_SUFFIXES)} or a folder"
        )
    if (
        p.suffix.lower() in STATE_DICT_SUFFIXES
        or spec.startswith((".", "/", "~"))
        or not _HUB_ID.match(spec)
    ):
        raise CheckpointError(f"{spec}: no such file or folder")
    return "hub"


def _hub_hint(spec: str, exc: Exception) -> CheckpointError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return CheckpointError(
        f"{spec}: could not load it from a local folder, the Hugging Face cache or the hub "
        f"({first}); on an offline machine pass a local model folder"
    )


def _as_dict(obj) -> dict:
    """A config entry (a dict, or a transformers object with ``to_dict``) as a dict."""
    if isinstance(obj, dict):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else {}


def load_hf_model(
    spec: str,
    config: str | None = None,
    dtype: torch.dtype | str | None = None,
    device_map: str | dict | None = None,
    strict: bool = True,
    notes: list[str] | None = None,
    quantization: str | None = None,
):
    """A transformers model from a folder or hub id, in the class its config names.

    ``dtype``: ``"auto"`` keeps the checkpoint's own (``torch_dtype`` / ``dtype`` of its
    config, float32 when it names none; :mod:`repspace.checkpoints.precision`), weights
    memory-mapped from safetensors, no second copy; a dtype (or its name) casts; None is
    float32.  ``quantization`` (``"4bit"`` / ``"8bit"``): load through bitsandbytes
    (:mod:`repspace.checkpoints.quantization`; the caller checked it can).
    ``device_map`` (``"auto"``, ``"cpu"``, ``{"": "cuda:0"}``, …) is handed to
    ``from_pretrained`` (accelerate's big-model dispatch).  Weights the class needs but the
    files lack would be random values (transformers only logs that): with ``strict`` an
    error naming examples, otherwise a note appended to ``notes``.
    """
    import transformers

    from repspace.checkpoints.kernels import no_hub_kernels
    from repspace.devices import check_device_map

    check_device_map(device_map)
    local = Path(spec).is_dir()
    for source in (spec, config):  # before any transformers call: it must never prompt
        if source is not None:
            refuse_remote_code(source)
    named_by = Path(config or spec)
    config_file = named_by / "config.json" if named_by.is_dir() else named_by
    if quantization is None:
        check_sizes(spec, config)  # a config claiming more than its weights: before building
    try:
        # trust_remote_code=False: transformers refuses custom code instead of asking on stdin.
        cfg = transformers.AutoConfig.from_pretrained(
            config or spec, local_files_only=local, trust_remote_code=False
        )
        cls = model_class_of(cfg, str(config_file))
        stored = getattr(cfg, "quantization_config", None)
        if quantization is None and stored is not None:
            refuse_stored_quantization(spec, {"quantization_config": _as_dict(stored)}, None)
        torch_dtype = torch.float32 if dtype is None else resolve_dtype(dtype, cfg)
        extra = {} if device_map is None else {"device_map": device_map}
        if quantization is not None:
            half = torch_dtype if torch_dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
            torch_dtype = half  # the dtype of the modules bitsandbytes leaves unquantized
            extra["quantization_config"] = bnb_config(quantization, half)
            extra.setdefault("device_map", {"": torch.cuda.current_device()})
        model, info = cls.from_pretrained(
            spec,
            config=cfg,
            local_files_only=local,
            dtype=torch_dtype,
            trust_remote_code=False,
            output_loading_info=True,
            **no_hub_kernels(),
            **extra,
        )
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - untrusted files fail in many exception types
        if isinstance(exc, pickle.UnpicklingError):
            raise CheckpointError(
                f"{spec}: refused — a weights file in it holds Python objects "
                "beyond tensors, and unpickling it could run arbitrary code; "
                "ask its author for a .safetensors copy"
            ) from None
        if local or not isinstance(exc, (OSError, ValueError, KeyError)):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CheckpointError(
                f"{spec}: not a loadable transformers model "
                f"({type(exc).__name__}: {first}); check or re-download it"
            ) from None
        raise _hub_hint(spec, exc) from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        text = (
            f"{len(missing)} weight(s) of {cls.__name__} missing from its files (e.g. "
            f"{', '.join(missing[:3])}), so transformers filled them with random values"
        )
        if strict:
            raise CheckpointError(
                f"{spec}: {text}; re-save or re-download it, or pass "
                "--non-strict to measure it anyway"
            )
        if notes is not None:
            notes.append(text)
    return model


_SIZES_CHECKED: set = set()  # (paths, stats) of configs already found to fit their weights


def check_sizes(spec: str, config: str | None = None) -> None:
    """The sizes the config of local model folder ``spec`` (or ``config``, naming its
    architecture) claims, checked against what its weight files hold, from their headers
    (:mod:`repspace.checkpoints.sizes`): layer counts first (the config's JSON alone), then
    the parameters of the architecture built on the meta device.  A no-op for anything
    else (hub ids, folders without weights); done once per unchanged folder."""
    import os

    from repspace.checkpoints.sizes import check_layer_counts, check_parameter_count, stored_weights

    if not Path(spec).is_dir():
        return
    named_by = Path(config or spec)
    config_file = named_by / "config.json" if named_by.is_dir() else named_by
    if not config_file.is_file():
        return
    weights = stored_weights(spec)
    if weights is None:
        return
    try:
        key = tuple(
            (os.path.realpath(f), f.stat().st_mtime_ns, f.stat().st_size)
            for f in (config_file, *weights.files)
        )
    except OSError:
        key = None
    if key is not None and key in _SIZES_CHECKED:
        return
    raw = read_config(config_file)
    check_layer_counts(config_file, raw, weights)
    import transformers

    try:
        cfg = transformers.AutoConfig.from_pretrained(
            str(config or spec), local_files_only=True, trust_remote_code=False
        )
        cls = model_class_of(cfg, str(config_file))
    except CheckpointError:
        raise
    except Exception:  # noqa: BLE001 - an unreadable config: from_pretrained reports it
        return
    check_parameter_count(config_file, cfg, cls, weights, raw)
    if key is not None:
        _SIZES_CHECKED.add(key)


def load_processor(spec: str | None):
    """The tokenizer / processor shipped with a checkpoint, or None."""
    if spec is None:
        return None
    import transformers

    local = Path(spec).is_dir()
    refuse_remote_code(spec)  # a tokenizer/processor auto_map: refused, never prompted for
    failure, failures = None, []
    for cls in (transformers.AutoProcessor, transformers.AutoTokenizer):
        try:
            out = cls.from_pretrained(spec, local_files_only=local, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001 - "no processor here" comes in many exception types
            first = " ".join(str(exc).split()).split(". ")[0][:160]  # its first sentence
            failure = failure or f"{type(exc).__name__}: {first}"
            failures.append(f"{cls.__name__}: {type(exc).__name__}: {first}")
            continue
        if failure is not None:
            # A video-capable VLM's processor fails on its video half (torchvision): its image
            # and text halves, put back together, build the same image+text inputs.
            from repspace.checkpoints.processors import image_only_processor

            images_only = image_only_processor(str(spec), out, failure)
            if images_only is not None:
                return images_only
            # Only the tokenizer loaded: say why the processor did not (e.g. a missing package),
            # so a model that takes images fails naming it instead of dropping its images.
            try:
                out.repspace_processor_error = failure
            except Exception:  # noqa: BLE001 - a tokenizer refusing attributes keeps no reason
                pass
        return out
    _PROCESSOR_FAILURES[str(spec)] = "; ".join(failures)  # for the error that follows
    return None


# spec -> why neither AutoProcessor nor AutoTokenizer loaded (e.g. a missing package).
_PROCESSOR_FAILURES: dict[str, str] = {}


def processor_failure(spec: str) -> str | None:
    """Why :func:`load_processor` returned None for ``spec`` (None if it did not)."""
    return _PROCESSOR_FAILURES.get(str(spec))


def adapter_config(path: Path) -> dict:
    """An adapter folder's ``adapter_config.json``, checked (one-line errors naming it)."""
    try:
        cfg = read_json(path / "adapter_config.json")
    except JSONFileError as exc:
        raise CheckpointError(f"{exc.path}: unreadable ({exc.problem})") from None
    check_adapter_config(cfg, path / "adapter_config.json")
    return cfg


def _base_of_adapter(path: Path, base: str | None) -> str:
    cfg = adapter_config(path)
    named = cfg.get("base_model_name_or_path")
    if base:
        return base
    if not named:
        raise CheckpointError(
            f"{path}: the adapter does not name its base model "
            "(base_model_name_or_path is empty); pass --base-override"
        )
    if not Path(named).exists() and named.startswith(("/", ".", "~")):
        raise CheckpointError(
            f"{path}: its base model {named} does not exist on this machine; "
            "pass --base-override with the base model folder"
        )
    return named


def recorded_base(spec: str) -> str | None:
    """The base model a checkpoint records: a PEFT adapter's ``base_model_name_or_path``, a
    repspace run's manifest ``base`` (or ``base_path``); None for anything else.  Raises
    :class:`CheckpointError` (one line) when an adapter's record is empty or unusable."""
    path = Path(resolve_spec(spec))
    if not path.is_dir():
        return None
    if (path / MANIFEST_NAME).is_file():
        try:
            manifest = read_json(path / MANIFEST_NAME)
        except JSONFileError as exc:
            raise CheckpointError(f"{exc.path}: unreadable ({exc.problem})") from None
        if not isinstance(manifest, dict):
            return None
        for key in ("base", "base_path"):
            named = manifest.get(key)
            if isinstance(named, str) and named:
                try:
                    if Path(resolve_spec(named)).exists():
                        return named
                except Exception:  # noqa: BLE001 - e.g. a preset name not installed here
                    continue
        return manifest.get("base_path") or manifest.get("base") or None
    if (path / "adapter_config.json").is_file():
        return _base_of_adapter(path, None)
    return None


def _is_auto(dtype) -> bool:
    return isinstance(dtype, str) and check_dtype(dtype) == "auto"


def local_config(spec: str) -> dict | None:
    """The ``config.json`` of a local model folder (None for anything else, or unreadable:
    the load proper reports that)."""
    path = Path(resolve_spec(str(spec)))
    try:
        return read_config(path / "config.json") if (path / "config.json").is_file() else None
    except CheckpointError:
        return None


def _qlora_base_dtype(spec: str, adapter_cfg: dict, base_spec: str, dtype, quantization):
    """The dtype to load a QLoRA adapter's base in (with a recorded note); ``dtype`` as given
    for any other adapter.  Under ``auto``: the 4-bit compute dtype the base records, else
    its own half dtype, else bfloat16 (QLoRA's compute dtype)."""
    base_cfg = local_config(base_spec)
    why = qlora_reason(adapter_cfg, base_cfg)
    if why is None or quantization is not None or (base_cfg or {}).get("quantization_config"):
        return dtype  # not QLoRA, loaded quantized, or a stored-quantized base (loads as stored)
    if _is_auto(dtype):
        own = config_dtype(base_cfg) if base_cfg else "float32"
        chosen = compute_dtype_of(base_cfg) or (
            getattr(torch, own) if own in ("bfloat16", "float16") else torch.bfloat16
        )
    else:
        chosen = dtype if dtype is not None else torch.float32
    name = str(chosen).removeprefix("torch.")
    from repspace._validation import RepspaceWarning

    warnings.warn(
        RepspaceWarning(
            f"note: {spec} is a QLoRA adapter ({why}); it is compared on the unquantized base in "
            f"{name}: the numbers are the adapter's effect on the full-precision weights, not on the "
            f"4-bit model it was trained with (docs/compare.md; {QUANT_FLAGS['4bit']} on a CUDA "
            "machine with bitsandbytes loads the base as trained)"
        ),
        stacklevel=3,
    )
    return chosen


def _check_adapter_loaded(caught, spec: str, base_spec: str) -> None:
    """peft only *warns* when adapter weights find no place in the base (an adapter trained
    on another model or head): the adapter then does nothing and every CKA is 1.  Refuse that;
    pass other warnings on."""
    for w in caught:
        text = str(w.message)
        if "missing adapter keys" in text:
            keys = re.findall(r"'([^']+)'", text)
            raise CheckpointError(
                f"{spec}: {len(keys) or 'some'} adapter weight(s) found no place in its base "
                f"{base_spec} (e.g. {', '.join(keys[:2])}); the adapter was trained on another "
                "model or head class: pass --base-override with the model it was trained on"
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


MAX_BASE_DEPTH = 8  # adapter -> base -> … links followed before a chain is called absurd


def _identity(spec: str) -> str:
    """One key per checkpoint: the real path of a local one, the spec of anything else."""
    import os

    resolved = resolve_spec(str(spec))
    return os.path.realpath(resolved) if Path(resolved).exists() else resolved


def _chain_error(chain: list[str], last: str, looped: bool) -> CheckpointError:
    shown = " -> ".join([*chain, last])
    if looped:
        return CheckpointError(
            f"{chain[0]}: its chain of base models loops ({shown}): an adapter or run records "
            "itself, or a checkpoint that leads back to it, as its base "
            "(base_model_name_or_path / the manifest's base); pass --base-override with the "
            "model it was trained on"
        )
    return CheckpointError(
        f"{chain[0]}: its chain of base models is longer than "
        f"{MAX_BASE_DEPTH} ({shown} -> …); pass --base-override with the "
        "model it was trained on"
    )


def _extend_chain(chain: tuple[tuple[str, str], ...], spec: str) -> tuple[tuple[str, str], ...]:
    """``chain`` (``(identity, as given)`` of the checkpoints being loaded, outermost first)
    with ``spec`` appended; a one-line error when ``spec`` is already in it or it is too long."""
    key = _identity(spec)
    shown = [given for _, given in chain]
    if any(key == k for k, _ in chain):
        raise _chain_error(shown, str(spec), looped=True)
    if len(chain) > MAX_BASE_DEPTH:
        raise _chain_error(shown, str(spec), looped=False)
    return (*chain, (key, str(spec)))


def base_chain(spec: str) -> list[str]:
    """``[spec, its recorded base, that one's recorded base, …]`` as far as the records go;
    a one-line :class:`CheckpointError` naming the chain when it loops (an adapter recording
    itself as its base, A -> B -> A) or is absurdly long.  A link that cannot be read ends
    the chain quietly: loading it reports that, naming the file."""
    chain = _extend_chain((), spec)
    current = spec
    while True:
        try:
            parent = recorded_base(current)
        except CheckpointError:
            parent = None
        if not parent:
            return [given for _, given in chain]
        chain = _extend_chain(chain, parent)
        current = parent


def preflight_checkpoints(specs, chains=None) -> None:
    """Cheap checks of every checkpoint before any is loaded: each exists (or looks like a hub
    id), none asks for remote code, and no chain of recorded bases loops, so a typo in the
    last of several tuned checkpoints fails in a second, not after the others were loaded.

    ``chains``: the specs whose recorded bases will be followed when they load (default:
    all of ``specs``; a tuned adapter given a base by the caller never follows its own)."""
    specs = list(specs)
    folders = []
    for spec in specs:
        if spec is None:
            continue
        resolved = resolve_spec(str(spec))
        refuse_remote_code(resolved)
        if not Path(resolved).is_file() or Path(resolved).suffix != ".json":  # --config file
            if detect_kind(resolved) == "hf":
                folders.append(resolved)
    for spec in specs if chains is None else chains:
        if spec is not None:
            for link in base_chain(str(spec))[1:]:
                resolved = resolve_spec(link)
                try:
                    if Path(resolved).is_dir() and detect_kind(resolved) == "hf":
                        folders.append(resolved)
                except CheckpointError:
                    continue  # loading that link reports it, naming the folder
    for folder in dict.fromkeys(folders):  # every model's sizes, before the first is loaded
        check_sizes(folder)


def load_checkpoint(
    spec: str | Path,
    base: str | Path | None = None,
    config: str | None = None,
    strict: bool = True,
    dtype: torch.dtype | str | None = None,
    device_map: str | dict | None = None,
    quantization: str | None = None,
    *,
    _chain: tuple[tuple[str, str], ...] = (),
) -> LoadedCheckpoint:
    """Load ``spec`` (see module docstring) in eval mode.

    ``base``: the base checkpoint a PEFT adapter or a bare state dict is applied onto
    (required for state dicts unless ``config`` names the architecture).  ``dtype``:
    ``"auto"`` (the checkpoint's own; an adapter's base's own; a QLoRA adapter's base in
    bfloat16, with a note), a dtype or its name, None for float32.  ``quantization``:
    ``"4bit"`` / ``"8bit"`` loads every transformers model through bitsandbytes.

    A base loaded for an adapter or run is loaded with the chain so far: an adapter that
    records itself (or a checkpoint leading back to it) as its base is a one-line error
    naming the chain, not an endless recursion.
    """
    given = str(spec)
    chain = _extend_chain(_chain, given)
    spec = resolve_spec(given)
    base = resolve_spec(str(base)) if base is not None else None
    refuse_remote_code(spec)  # any kind of folder: before transformers or peft read it
    kind = detect_kind(spec)
    path = Path(spec)
    name = given if given == EMBEDDED else (path.stem if path.is_file() else (path.name or spec))
    out: LoadedCheckpoint
    if kind in ("hf", "hub"):
        notes: list[str] = []
        model = load_hf_model(
            spec,
            config=config,
            dtype=dtype,
            device_map=device_map,
            strict=strict,
            notes=notes,
            quantization=quantization,
        )
        out = LoadedCheckpoint(
            spec,
            name if kind == "hf" else spec,
            kind,
            model,
            load_processor(spec),
            checkpoint_sha256(spec),
            notes=notes,
        )
    elif kind == "peft":
        from peft import PeftModel

        base_spec = _base_of_adapter(path, base)
        base_dtype = _qlora_base_dtype(spec, adapter_config(path), base_spec, dtype, quantization)
        weights = [
            path / f
            for f in ("adapter_model.safetensors", "adapter_model.bin")
            if (path / f).is_file()
        ]
        if not weights:
            raise CheckpointError(
                f"{spec}: adapter folder without weights (adapter_model."
                "safetensors or adapter_model.bin); was save_pretrained interrupted?"
            )
        read_state_dict(weights[0])  # refuses payloads / truncation, naming the file, before peft
        base_model = load_checkpoint(
            base_spec,
            dtype=base_dtype,
            device_map=device_map,
            quantization=quantization,
            _chain=chain,
        ).model
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = PeftModel.from_pretrained(base_model, spec, is_trainable=False)
            _check_adapter_loaded(caught, spec, base_spec)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CheckpointError(
                f"{spec}: adapter does not fit its base {base_spec} ({first}); "
                "pass --base-override with the model it was trained on"
            ) from None
        out = LoadedCheckpoint(
            spec,
            name,
            kind,
            model,
            load_processor(spec) or load_processor(base_spec),
            checkpoint_sha256(spec),
            base=base_spec,
        )
    elif kind == "state_dict":
        if base is None and config is None:
            raise CheckpointError(
                f"{spec}: a bare weights file has no architecture; pass the base "
                "checkpoint (repspace compare BASE TUNED) or --config"
            )
        if quantization is not None:
            raise CheckpointError(
                f"{spec}: {QUANT_FLAGS[quantization]} quantizes models loaded "
                "from folders; a bare weights file is applied onto a "
                "full-precision architecture: leave the flag out"
            )
        state = read_state_dict(path)  # read (and refuse unsafe pickles) before building a model
        arch_spec = config or base
        model = load_hf_model(
            base if base is not None else config, config=config, dtype=dtype, device_map=device_map
        )
        dtype = model.dtype  # "auto" resolved: the architecture's own
        try:
            notes = apply_state_dict(model, state, spec, strict=strict)
        except CheckpointError as exc:
            # A model.safetensors written by save_pretrained keeps transformers' on-disk key
            # names, which transformers 5 renames when loading: load it the same way.  When
            # that does not fit either, the key-by-key error above is the one to show.
            try:
                saved = (
                    None
                    if device_map is not None
                    else load_saved_format(path, config or base, strict=strict, dtype=dtype)
                )
            except CheckpointError:
                saved = None
            if saved is None:
                raise exc from None
            model, notes = saved
        out = LoadedCheckpoint(
            spec,
            name,
            kind,
            model,
            load_processor(base or arch_spec),
            checkpoint_sha256(spec),
            base=base,
            notes=notes,
        )
    else:  # repspace
        try:
            manifest = read_json(path / MANIFEST_NAME)
        except JSONFileError as exc:
            raise CheckpointError(
                f"{exc.path}: unreadable manifest ({exc.problem}); "
                "was the run interrupted while saving?"
            ) from None
        if not isinstance(manifest, dict):
            raise CheckpointError(
                f"{path / MANIFEST_NAME}: must hold a JSON object; got {type(manifest).__name__}"
            )
        fmt = manifest.get("weights_format")
        if not isinstance(fmt, str):
            raise CheckpointError(
                f"{path / MANIFEST_NAME}: 'weights_format' must be a string; "
                f"got {fmt!r}; was the run written by repspace?"
            )
        loader = _MANIFEST_LOADERS.get(fmt)
        if loader is None and fmt in RUN_FORMATS:
            # checkpoints sit below training and must not import it; training registers.
            raise CheckpointError(
                f"{spec}: a repspace training run; its loader registers when "
                "repspace.training is imported: `import repspace.training` first "
                "(repspace compare, repspace layers and repspace.compare do)"
            )
        if loader is None:
            raise CheckpointError(
                f"{spec}: repspace checkpoint with weights_format {fmt!r}, which "
                "this version of repspace cannot load; upgrade repspace"
            )
        out = loader(
            path,
            manifest,
            lambda s: load_checkpoint(s, dtype=dtype, quantization=quantization, _chain=chain),
            base,
        )
        out.manifest = manifest
    out.model.eval()
    return out
