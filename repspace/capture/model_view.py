"""A model view: what repspace reads of one loaded model's structure, resolved once.

TransformerLens resolves a model's facts once, in ``setup()``, and every later step reads
them.  repspace used to ask the model again at each use: the unwrapped root, the canonical
layer table, the block lists (towers), the virtual-token count and the image-token id were
recomputed at ~45 call sites, the layer table (a walk of every module with string work on
each name) several times per compare.  :class:`ModelView` holds them; :func:`model_view`
returns one.

When a view is cached, and why only then: inside :func:`views_resolved_once` (which
:func:`repspace.compare.compare` opens once its models are loaded, and
:func:`repspace.compare.engine.compare_models` and each tracker measurement open) each model
object gets one view, built on first use and kept until the scope ends.  Outside
a scope every call builds a fresh view, exactly what the call sites computed before: a model
whose structure changes in place (an adapter injected by ``get_peft_model``, a training
run, ``merge_and_unload``) would make a long-lived cache stale, while a comparison never
changes a model's structure once it is loaded (merge fidelity merges deep copies, new
objects with views of their own) -- loading does (a run folder's method is applied onto its
base in place, after the method has read the base's presets), so the scope opens after it.

Call sites that need only the root of a model outside the capture path (probe inputs,
training tasks, methods) still call :func:`repspace.layer_table.unwrap_model`: it is two
``isinstance`` checks, cheaper than asking for a view outside a scope.

The virtual-token count is the adapter's *enabled* count; :func:`num_virtual_tokens` still
answers 0 inside ``disable_adapter()``, checked at each call (the one fact that changes
while a model is compared: the shared-base capture switches the adapter off and on).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from weakref import WeakKeyDictionary

from torch import nn

from repspace.layer_table import canonical_modules, unwrap_model

__all__ = [
    "ModelView",
    "adapter_disabled",
    "build_view",
    "core_module",
    "model_view",
    "resolving_views_once",
    "views_resolved_once",
]

# Leaf-ish layers never count as "blocks" even when stacked in a ModuleList.
_NOT_BLOCKS = (nn.Linear, nn.Embedding, nn.LayerNorm, nn.Dropout, nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True, eq=False)
class ModelView:
    """The resolved structure of one model (as passed: a ``PeftModel``, a plain model, or a
    head model's backbone).

    ``root``: the original architecture inside PEFT wrappers; ``modules``: the canonical
    layer table ``{name: module}`` (read-only, :func:`repspace.layer_table.canonical_modules`);
    ``towers``: every outermost homogeneous block list ``(list path, block names)``
    (:func:`repspace.capture.presets.block_lists`); ``main_input_name``: the root's
    (``"pixel_values"`` for a pure vision model); ``virtual_tokens``: positions a
    prompt-learning adapter prepends when enabled; ``image_token``: the placeholder id a
    LLaVA-style model replaces by image features, else None.
    """

    model: nn.Module
    root: nn.Module
    modules: Mapping[str, nn.Module]
    towers: tuple[tuple[str, tuple[str, ...]], ...]
    main_input_name: str
    virtual_tokens: int
    image_token: int | None

    @property
    def names(self) -> list[str]:
        """Every selectable canonical layer name, in ``named_modules()`` order."""
        return list(self.modules)


def build_view(model: nn.Module) -> ModelView:
    """Resolve ``model``'s view now (no cache: :func:`model_view` is the usual entry)."""
    root = unwrap_model(model)
    modules = canonical_modules(root)
    return ModelView(
        model=model,
        root=root,
        modules=MappingProxyType(modules),
        towers=_towers(root, modules),
        main_input_name=getattr(root, "main_input_name", "") or "",
        virtual_tokens=_virtual_tokens(model, root),
        image_token=_image_token(root),
    )


_VIEWS: ContextVar[WeakKeyDictionary | None] = ContextVar("repspace_model_views", default=None)


@contextmanager
def views_resolved_once() -> Iterator[None]:
    """Within this block each model's view is built once and reused (nested blocks share
    the outermost one's cache; it is dropped when that block ends)."""
    if _VIEWS.get() is not None:
        yield
        return
    token = _VIEWS.set(WeakKeyDictionary())
    try:
        yield
    finally:
        _VIEWS.reset(token)


def resolving_views_once(fn):
    """``fn`` run inside :func:`views_resolved_once` (for the entry points of a compare)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with views_resolved_once():
            return fn(*args, **kwargs)

    return wrapper


def model_view(model: nn.Module) -> ModelView:
    """``model``'s view: the scope's cached one inside :func:`views_resolved_once`, else a
    fresh one (see the module docstring for why only there)."""
    if isinstance(model, ModelView):
        return model
    cache = _VIEWS.get()
    if cache is None:
        return build_view(model)
    view = cache.get(model)
    if view is None:
        view = cache[model] = build_view(model)
    return view


def adapter_disabled(model: nn.Module) -> bool:
    """Whether ``model`` is a ``PeftModel`` inside ``disable_adapter()`` (its base forward
    runs: nothing is prepended)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel) and not getattr(model, "has_active_enabled_adapter", True)


def core_module(module: nn.Module) -> nn.Module:
    """The original module inside adapter wrappers (``base_layer`` chains)."""
    while isinstance(getattr(module, "base_layer", None), nn.Module):
        module = module.base_layer
    return module


def _towers(
    root: nn.Module, modules: Mapping[str, nn.Module]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every outermost homogeneous block list, paths canonical, in registration order."""
    ids = {id(m): n for n, m in modules.items()}
    found: list[tuple[str, list[str]]] = []
    for path, module in root.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) == 0:
            continue
        children = list(module)
        kinds = {type(core_module(c)) for c in children}
        if len(kinds) != 1 or isinstance(core_module(children[0]), _NOT_BLOCKS):
            continue
        if not any(True for _ in children[0].children()):
            continue  # a list of leaves (e.g. activations) is not a stack of blocks
        names = [ids.get(id(c)) for c in children]
        if any(n is None for n in names):
            continue  # inside an adapter component
        if any(
            n.startswith(p + ".")
            for p, blocks in found
            for n in names
            if any(n.startswith(b + ".") for b in blocks)
        ):
            continue  # nested inside a block of an outer list (e.g. T5 sub-layers)
        found.append((names[0].rsplit(".", 1)[0], names))
    return tuple((p, tuple(b)) for p, b in found)


def _virtual_tokens(model: nn.Module, root: nn.Module) -> int:
    """Positions a prompt-learning method prepends when enabled (0 if none): a PEFT
    prompt-learning adapter's ``num_virtual_tokens``, or repspace's own prompt tuning (a
    module with a ``repspace_num_virtual_tokens`` attribute, :mod:`repspace.methods.prompt`)."""
    try:
        from peft import PeftModel, PeftType
    except ImportError:
        PeftModel = None
    if PeftModel is not None and isinstance(model, PeftModel):
        cfg = model.active_peft_config
        if getattr(cfg, "is_prompt_learning", False) and cfg.peft_type != PeftType.PREFIX_TUNING:
            return int(cfg.num_virtual_tokens)
    for module in root.modules():
        n = getattr(module, "repspace_num_virtual_tokens", None)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
    return 0


def _image_token(root: nn.Module) -> int | None:
    cfg = getattr(root, "config", None)
    for key in ("image_token_id", "image_token_index"):
        value = getattr(cfg, key, None)
        if isinstance(value, int):
            return value
    return None
