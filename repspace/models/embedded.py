"""The embedded pre-trained model: a tiny BLIP captioner shipped inside the package.

``repspace/models/embedded/`` is a complete Hugging Face folder (``config.json``,
``model.safetensors``, tokenizer and processor files, ``pretrain_manifest.json``) written by
``repspace pretrain`` (:mod:`repspace.training.pretrain`); see ``docs/embedded_model.md``.
Users name it with the spec string :data:`EMBEDDED` (``--base embedded``).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["EMBEDDED", "MANIFEST", "embedded_path", "load_embedded", "embedded_manifest"]

#: The checkpoint spec string that names the embedded model.
EMBEDDED = "embedded"
#: Name of the recipe / provenance file written next to the weights.
MANIFEST = "pretrain_manifest.json"
_REQUIRED = ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json")


def embedded_path() -> Path:
    """Folder of the embedded model inside the installed package."""
    return Path(__file__).resolve().parent / "embedded"


def _check_folder(path: Path) -> None:
    missing = [f for f in _REQUIRED if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"embedded model folder {path} lacks {', '.join(missing)}; "
            "reinstall repspace or regenerate it with `repspace pretrain`"
        )


def load_embedded(path: str | Path | None = None):
    """``(model, processor)``: the embedded ``BlipForConditionalGeneration`` in eval mode and its
    ``BlipProcessor``, loaded offline (``local_files_only=True``) from ``path`` (default
    :func:`embedded_path`)."""
    import transformers

    folder = embedded_path() if path is None else Path(path)
    _check_folder(folder)
    # Hub kernels off, as every load in repspace (repspace/checkpoints/kernels.py, a floor
    # above this one: the same test of the installed transformers, inline)
    kernels = (
        {"use_kernels": False} if hasattr(transformers.PreTrainedModel, "set_use_kernels") else {}
    )
    model = transformers.BlipForConditionalGeneration.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False, **kernels
    )
    processor = transformers.AutoProcessor.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False
    )
    return model.eval(), processor


def embedded_manifest(path: str | Path | None = None) -> dict:
    """The ``pretrain_manifest.json`` of the embedded model (recipe, seed, scores, versions)."""
    folder = embedded_path() if path is None else Path(path)
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{folder / MANIFEST} does not exist; regenerate the folder with `repspace pretrain`"
        ) from None
