"""One model for base and tuned: the base read from a PEFT model with its adapter disabled.

A PEFT adapter leaves the pre-trained weights in place and adds its own parameters beside
them; ``PeftModel.disable_adapter()`` switches every adapter layer off, so the forward pass
inside it *is* the base model's forward — the same float operations on the same weights,
hence bit-identical states — and the base needs no second copy in memory (about half the
model memory of a comparison).

That holds only when everything the adapter changed lives in adapter layers that
``disable_adapter()`` turns off.  :func:`disabled_base_reason` names what breaks it, and
``repspace compare`` then loads the base separately (two models) and records the reason:

- **prompt learning** (prompt/prefix/P-tuning, adaption prompt): peft disables them by
  swapping the wrapper's forward, and the two sides differ in sequence length (virtual
  tokens); kept on two models;
- **trainable biases** (LoRA ``bias="all"`` / ``"lora_only"``): the base's own bias
  tensors were overwritten, and disabling does not restore them;
- **``modules_to_save`` / ``trainable_token_indices``**: whole base modules (or embedding
  rows) replaced by trained copies;
- **``layer_replication``**: the base's layer stack itself was rebuilt;
- **merged weights**: ΔW was added into the base weights (``merge_adapter``);
- **any stored tensor outside the adapter's parameters**: the adapter file holds a tensor
  whose name lacks the tuner's parameter prefix (``lora_``, ``ia3_``, ``hada_``, …), i.e. a
  base weight overwritten on load — the generic rule that catches what the list misses;
- several adapters in one model, several tuned checkpoints, ``--base-override`` / ``--config``
  (the adapter is not applied onto the compared base), or a checkpoint that is not a
  PEFT adapter folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: adapter_file_reason serves the torch-free --plan
    import torch

__all__ = ["disabled_base_reason", "plan_reason", "adapter_file_reason", "shared_base_checkpoint"]


def plan_reason(
    base: str,
    tuned: Sequence[str],
    *,
    base_override: str | None = None,
    config: str | None = None,
    two_models: bool = False,
) -> str | None:
    """Why the base must be loaded separately, from the arguments alone (None: the tuned
    checkpoint may supply it; :func:`disabled_base_reason` decides after loading it)."""
    from repspace.checkpoints import resolve_spec
    from repspace.checkpoints.loader import detect_kind

    if two_models:
        return "two models requested (--two-models)"
    if len(tuned) != 1:
        return f"{len(tuned)} tuned checkpoints (the base is captured once for all of them)"
    spec = resolve_spec(str(tuned[0]))
    kind = detect_kind(spec)
    if kind != "peft":
        return f"the tuned checkpoint is not a PEFT adapter folder (kind {kind})"
    if config is not None:
        return "--config given: the base's architecture is not the adapter's own base"
    if base_override is not None and not _same(base_override, base):
        return f"the adapter is applied onto --base-override {base_override}, not onto the compared base"
    return adapter_file_reason(Path(spec))


def _same(a: str, b: str) -> bool:
    from repspace.checkpoints import resolve_spec

    return a == b or Path(resolve_spec(a)).resolve() == Path(resolve_spec(b)).resolve()


def _adapter_config(path: Path) -> dict:
    import json

    try:
        cfg = json.loads((path / "adapter_config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return {}  # the loader reports unreadable configs, naming the file
    return cfg if isinstance(cfg, dict) else {}


def adapter_file_reason(path: Path) -> str | None:
    """Reasons readable from an adapter folder's ``adapter_config.json`` alone."""
    cfg = _adapter_config(path)
    kind = str(cfg.get("peft_type", "?"))
    if kind in (
        "PROMPT_TUNING",
        "P_TUNING",
        "PREFIX_TUNING",
        "MULTITASK_PROMPT_TUNING",
        "CPT",
        "ADAPTION_PROMPT",
    ):
        return (
            f"prompt learning ({kind}): peft disables it by swapping the forward and the "
            "tuned sequence carries virtual tokens"
        )
    if str(cfg.get("bias", "none")) != "none":
        return (
            f"trainable biases (bias={cfg['bias']!r}): the adapter overwrote base biases that "
            "disable_adapter() does not restore"
        )
    if cfg.get("modules_to_save"):
        return f"modules_to_save {cfg['modules_to_save']}: trained copies of whole base modules"
    if cfg.get("trainable_token_indices"):
        return "trainable_token_indices: trained embedding rows of the base"
    if cfg.get("layer_replication"):
        return "layer_replication: the base's layer stack was rebuilt"
    return None


def _stored_keys(model) -> list[str]:
    """Names of the tensors the loaded adapter holds (what peft saves and loads)."""
    from peft import get_peft_model_state_dict

    return list(get_peft_model_state_dict(model))


def disabled_base_reason(model: torch.nn.Module) -> str | None:
    """None when ``model`` (a loaded ``PeftModel``) run under ``disable_adapter()`` is its
    base model exactly; otherwise why not (one phrase, shown in the report)."""
    try:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper
    except ImportError:
        return "peft is not installed"
    if not isinstance(model, PeftModel):
        return f"not a PEFT model ({type(model).__name__})"
    if len(model.peft_config) != 1:
        return f"{len(model.peft_config)} adapters loaded in one model"
    cfg = model.active_peft_config
    kind = str(getattr(cfg.peft_type, "value", cfg.peft_type))
    if getattr(cfg, "is_prompt_learning", False) or getattr(cfg, "is_adaption_prompt", False):
        return (
            f"prompt learning ({kind}): peft disables it by swapping the forward and the "
            "tuned sequence carries virtual tokens"
        )
    bias = getattr(cfg, "bias", "none")
    if bias not in (None, "none"):
        return (
            f"trainable biases (bias={bias!r}): the adapter overwrote base biases that "
            "disable_adapter() does not restore"
        )
    if getattr(cfg, "layer_replication", None):
        return "layer_replication: the base's layer stack was rebuilt"
    for name, module in model.named_modules():
        if isinstance(module, AuxiliaryTrainingWrapper):
            return (
                f"{type(module).__name__} at {name} (modules_to_save / trainable tokens): "
                "trained copies of base modules"
            )
        if isinstance(module, BaseTunerLayer) and getattr(module, "merged", False):
            return f"merged weights ({name}): ΔW was added into the base weights"
    prefix = getattr(model.base_model, "prefix", None)
    if not prefix:
        return f"{kind}: the tuner does not name its parameters (no prefix to check)"
    # An adapter's own tensors carry the tuner's prefix (lora_A, hada_w1_a, ...) or one of its
    # layers' declared parameter names (VeRA's shared vera_A / vera_B).
    own = {
        n
        for m in model.modules()
        if isinstance(m, BaseTunerLayer)
        for n in (*m.adapter_layer_names, *m.other_param_names)
    }
    foreign = [
        k
        for k in _stored_keys(model)
        if not any(part.startswith(prefix) or part in own for part in k.split("."))
    ]
    if foreign:
        return (
            f"the adapter stores {len(foreign)} tensor(s) of the base itself (e.g. "
            f"{foreign[0]}), which disable_adapter() does not restore"
        )
    return None


def shared_base_checkpoint(base: str, tuned):
    """A :class:`LoadedCheckpoint` for ``base`` whose model is ``tuned.model`` itself (the
    compare engine captures it with the adapter disabled): identity, processor and hash of
    the base folder, no second model in memory."""
    from repspace.checkpoints import LoadedCheckpoint, checkpoint_sha256, resolve_spec
    from repspace.checkpoints.loader import EMBEDDED, detect_kind, load_processor

    spec = resolve_spec(str(base))
    kind = detect_kind(spec)
    path = Path(spec)
    name = (
        str(base)
        if str(base) == EMBEDDED
        else (path.stem if path.is_file() else (path.name or spec))
    )
    if kind == "hub":
        name = spec
    return LoadedCheckpoint(
        spec, name, kind, tuned.model, load_processor(spec), checkpoint_sha256(spec)
    )
