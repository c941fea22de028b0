"""The layer table: the canonical, human-readable layer names that a base model and its
tuned versions share, and the model root (the original architecture inside PEFT wrappers).

(Named ``introspection`` before issue 30: the name said nothing about layer names, which is
what a newcomer looks for.)

A foundation module (it imports nothing from repspace): capture, probe, methods and
training all need it.

A layer name is the dotted ``named_modules()`` path of a module *relative to the
original (un-wrapped) model*, e.g. ``encoder.layer.3`` or
``vision_model.encoder.layers.0``.  The same string therefore addresses the same
block in

* the pre-trained model,
* a PEFT ``PeftModel`` (LoRA/IA3 wrap it as ``base_model.model.<name>``; prompt
  learning as ``base_model.<name>``) — the wrapper is unwrapped, not string-stripped,
* a model whose layers were wrapped by an adapter (LoRA keeps the original module as
  ``<name>.base_layer``; we hook the *wrapping* module so the adapter's contribution is
  part of the captured output, and hide ``base_layer`` and the adapter's own
  sub-modules so adding an adapter never adds or shifts a selectable name).

A name may end in ``:input`` to capture what goes *into* that module (used by the
``embeddings`` preset on models without an embeddings module, e.g. GPT-2).
"""

from __future__ import annotations

import difflib

from torch import nn

__all__ = [
    "INPUT_SUFFIX",
    "canonical_modules",
    "closest_names",
    "layer_names",
    "register_adapter_component",
    "split_input_suffix",
    "unwrap_model",
]

INPUT_SUFFIX = ":input"

# Sub-module names that adapters add *inside* the module they modify.  A path
# component equal to one of these (or starting with one of the prefixes) belongs to
# the adapter, never to the pre-trained architecture, so it is not selectable.  These
# are peft's; repspace's own methods declare theirs (MethodFacts.hidden_modules) and
# register them here when they register (register_adapter_component).
_ADAPTER_PARTS = {
    "modules_to_save",
    "prompt_encoder",
    "lora_A",
    "lora_B",
    "lora_dropout",
    "lora_embedding_A",
    "lora_embedding_B",
    "lora_magnitude_vector",
    "ia3_l",
    "vera_A",
    "vera_B",
    "oft_r",
    "boft_R",
    "hra_u",
}
# Wrappers keep the original module under one of these attributes: the component is
# dropped from the path, so the original sub-modules keep their names and the wrapper
# (registered first) takes the original's name.
_COLLAPSED_PARTS = {"base_layer", "original_module"}
_ADAPTER_PREFIXES = (
    "lora_",
    "ia3_",
    "adalink_",
    "adapter_",
    "vera_",
    "oft_",
    "boft_",
    "loha_",
    "lokr_",
    "hra_",
    "fourierft_",
    "bone_",
    "ln_tuning_",
)
# Containers are never called themselves, so a hook on them would capture nothing.
_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
_PEFT_PREFIXES = ("base_model.model.", "base_model.")


def register_adapter_component(name: str) -> None:
    """Hide sub-modules called ``name`` (e.g. a custom adapter's attribute) from selection."""
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"adapter component must be one attribute name without dots; got {name!r}")
    _ADAPTER_PARTS.add(name)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The original architecture inside PEFT wrappers (``PeftModel``, ``LoraModel``, ...)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    try:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTuner
    except ImportError:  # peft is optional for plain models
        return model
    if isinstance(model, PeftModel):
        return unwrap_model(model.get_base_model())
    if isinstance(model, BaseTuner):
        return unwrap_model(model.model)
    return model


def _is_adapter_part(component: str) -> bool:
    return component in _ADAPTER_PARTS or component.startswith(_ADAPTER_PREFIXES)


def canonical_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{canonical name: module}`` for every selectable module, in registration order.

    Excludes the root (``""``), containers (``ModuleList`` & co., never called) and
    anything inside an adapter component; ``base_layer``/``original_module`` path
    components are dropped, so the wrapper gets the original's name and the original's
    sub-modules keep theirs.  Deterministic: ``named_modules()`` order.
    """
    root = unwrap_model(model)
    out: dict[str, nn.Module] = {}
    for name, module in root.named_modules():
        if not name or isinstance(module, _CONTAINERS):
            continue
        parts = name.split(".")
        if any(_is_adapter_part(c) for c in parts):
            continue
        name = ".".join(c for c in parts if c not in _COLLAPSED_PARTS)
        for prefix in _PEFT_PREFIXES:  # a PEFT model nested inside a plain module
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        out.setdefault(name, module)
    return out


def layer_names(model: nn.Module) -> list[str]:
    """Every selectable canonical layer name of ``model`` (see :func:`canonical_modules`)."""
    return list(canonical_modules(model))


def split_input_suffix(name: str) -> tuple[str, bool]:
    """``"a.b:input"`` -> ``("a.b", True)``; ``"a.b"`` -> ``("a.b", False)``."""
    if name.endswith(INPUT_SUFFIX):
        return name[: -len(INPUT_SUFFIX)], True
    return name, False


def closest_names(query: str, names: list[str], k: int = 5) -> list[str]:
    """Up to ``k`` names most similar to ``query`` (for error messages)."""
    plain = query.replace("*", "").replace("?", "")
    hits = difflib.get_close_matches(plain, names, n=k, cutoff=0.3)
    if len(hits) < k:  # fall back to names sharing the last component
        last = plain.rsplit(".", 1)[-1]
        hits += [n for n in names if last and n.endswith(last) and n not in hits][: k - len(hits)]
    return hits or names[:k]
