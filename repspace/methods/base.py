"""The method registry and what every method shares: config dataclasses, freezing,
parameter counts and the trainable-weights round trip.

A method family lives in ``repspace/methods/<family>/`` and registers itself with
:func:`register_method`: a name, a config dataclass (subclass of :class:`MethodConfig`),
an ``apply(model, config, arch, stage) -> model`` function that injects its modules
into an already *frozen* model and marks exactly its own parameters trainable, and its
:class:`MethodFacts` (default learning rate, colour and marker in every figure, the
sub-module names it inserts, whether it trains every weight).  Families are found by
listing this package's sub-packages, so adding a method touches its own folder only
(docs/methods.md, "Adding a method").

Multi-stage methods (PT-PEFT) declare ``num_stages > 1``; stage ``k`` adds to what stages
``< k`` built.  :func:`apply_method` with ``stage=None`` builds every stage, which is how
a saved checkpoint is rebuilt before its trainable weights are loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from repspace._constraints import Check, Interval, SettingError, Types, Validated, validate
from repspace.checkpoints.errors import CheckpointError
from repspace.layer_table import register_adapter_component
from repspace.methods.architectures import ArchSpec, architecture_of

__all__ = [
    "MethodConfig",
    "MethodSpec",
    "ParamCount",
    "register_method",
    "get_method",
    "available_methods",
    "make_config",
    "config_from_dict",
    "apply_method",
    "count_parameters",
    "trainable_state_dict",
    "load_trainable_state_dict",
    "generation_kwargs",
    "method_name",
    "head_parameters",
    "MethodFacts",
    "method_facts",
    "SettingError",
    "MAX_SIZE",
    "SIZE",
    "SWITCH",
    "TOWERS",
    "subset_of",
    "names",
]

# Families import lazily, so `import repspace` stays cheap and peft is only imported on use;
# they are the sub-packages of repspace.methods (see _load_families).
_REGISTRY: dict[str, "MethodSpec"] = {}
_loaded = False


MAX_SIZE = 1 << 16  # ranks, widths and virtual-token counts above this are typos or attacks

# What the families declare their fields with (``_constraints``), so every method refuses a
# bad option with the same one-line SettingError naming the option.
SIZE = Interval(int, 1, MAX_SIZE)
SWITCH = Types(bool, name="true or false")  # --option takes JSON: true / false


def subset_of(allowed, *, unique: bool = False) -> Check:
    """One name of ``allowed``, or a non-empty sequence of them (``unique``: no repeats);
    :func:`names` turns the accepted value into the tuple the config keeps."""
    allowed = tuple(allowed)

    def accepts(value) -> bool:
        chosen = names(value)
        return (
            bool(chosen)
            and all(isinstance(n, str) and n in allowed for n in chosen)
            and (not unique or len(set(chosen)) == len(chosen))
        )

    return Check(
        accepts,
        f"a non-empty subset of {', '.join(allowed)}" + (" without repeats" if unique else ""),
    )


def names(value) -> tuple:
    """One name or a sequence of names as a tuple (JSON and TOML give lists)."""
    return (value,) if isinstance(value, str) else tuple(value)


TOWERS = subset_of(("text", "vision"))


@dataclass
class MethodConfig(Validated):
    """Base of every method's config.  Subclasses are dataclasses with defaults for every field.

    ``budget_field`` names the parameter-budget knob (LoRA ``r``, adapter ``width``,
    prefix/prompt ``num_virtual_tokens``, AdaLink ``rank``) that studies sweep.
    ``train_head`` (every method): also train the task head (:func:`head_parameters`).

    A family declares what its fields accept in ``_constraints`` (its own fields only: the
    base's are merged in); a field it leaves undeclared is held to the kind of its default
    (a bool default: true or false; a float default: a finite number), so a new method
    cannot forget NaN and inf.  ``__post_init__`` checks them all when the config is made.
    """

    method: ClassVar[str] = ""
    budget_field: ClassVar[str | None] = None
    num_stages: ClassVar[int] = 1
    _command: ClassVar[str] = "method config"
    _constraints: ClassVar[dict] = {"train_head": [SWITCH]}
    # "PEFT + head" (Tian et al. 2024): the task head trains fully alongside the method
    train_head: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        merged: dict = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("_constraints", {}))
        cls._constraints = merged

    def __post_init__(self):
        super().__post_init__()
        validate(_implied_constraints(type(self)), self, owner=type(self).__name__)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, including ``"method"``; inverse of :func:`config_from_dict`."""
        out = {"method": self.method}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @property
    def budget(self) -> Any:
        return None if self.budget_field is None else getattr(self, self.budget_field)

    def stage_steps(self, total_steps: int) -> list[int]:
        """Steps of each stage for a run of ``total_steps`` (one stage: all of them)."""
        return [int(total_steps)]


@functools.cache
def _implied_constraints(cls: type) -> dict[str, list]:
    """The kind of each undeclared field's default, as a constraint (see MethodConfig)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in cls._constraints or f.default is dataclasses.MISSING:
            continue
        if isinstance(f.default, bool):
            out[f.name] = [SWITCH]
        elif isinstance(f.default, float):
            out[f.name] = [Interval(float)]
    return out


@dataclass(frozen=True)
class MethodFacts:
    """What the rest of repspace needs to know about a method, declared by the method.

    ``default_lr``: learning rate when a run gives none (``TrainConfig.lr=None``).
    ``color`` / ``marker``: its look in every figure (None: a fallback palette slot).
    ``hidden_modules``: attribute names of the sub-modules it inserts into the model; they
    are never selectable layers, so adding the method never adds or shifts a layer name.
    ``trains_all_weights``: full fine-tuning: it needs no architecture sites, and a run
    folder saves every weight instead of the trained ones.
    ``order``: where ``repspace methods`` and the docs list it.
    """

    default_lr: float = 1e-3
    color: str | None = None
    marker: str | None = None
    hidden_modules: tuple[str, ...] = ()
    trains_all_weights: bool = False
    order: int = 100

    def __post_init__(self):
        if not (isinstance(self.default_lr, float) and 0 < self.default_lr < 1):
            raise ValueError(f"default_lr must be a float in (0, 1); got {self.default_lr!r}")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_class: type[MethodConfig]
    apply: Callable[..., nn.Module]
    summary: str
    paper: str = ""
    defaults: dict = dataclasses.field(default_factory=dict)  # config overrides for this name
    facts: MethodFacts = MethodFacts()


@dataclass(frozen=True)
class ParamCount:
    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} trainable of {self.total:,} ({100 * self.fraction:.3f} %)"


def register_method(
    name: str,
    config_class: type[MethodConfig],
    apply: Callable[..., nn.Module],
    summary: str,
    paper: str = "",
    *,
    facts: MethodFacts = MethodFacts(),
    **defaults,
) -> None:
    """Register method ``name`` with its :class:`MethodFacts`.  ``defaults`` override config
    fields for this name (e.g. ``pt_lora`` and ``pt_adapter`` share one config class)."""
    if not dataclasses.is_dataclass(config_class) or not issubclass(config_class, MethodConfig):
        raise TypeError(f"{config_class!r} must be a dataclass subclassing MethodConfig")
    if not isinstance(facts, MethodFacts):
        raise TypeError(f"facts of {name!r} must be a MethodFacts; got {type(facts).__name__}")
    for component in facts.hidden_modules:
        register_adapter_component(component)
    _REGISTRY[name] = MethodSpec(name, config_class, apply, summary, paper, dict(defaults), facts)


def _families() -> list[str]:
    """The method families: every sub-package of repspace.methods (``__path__`` may list more
    than one folder, e.g. a plugin directory appended by the user).  The package is read from
    ``sys.modules``, not imported: Python imported it before this submodule, and an import
    here would make base and the package that re-exports it import each other."""
    package = sys.modules[__name__.rpartition(".")[0]]
    return sorted({m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg})


def _load_families() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for family in _families():
            importlib.import_module(f"repspace.methods.{family}")


def available_methods() -> list[str]:
    """Registered method names, in their families' listing order (:attr:`MethodFacts.order`)."""
    _load_families()
    order = {name: i for i, name in enumerate(_REGISTRY)}
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].facts.order, order[n]))


def method_facts() -> dict[str, MethodFacts]:
    """``{method name: its facts}`` for every registered method."""
    return {name: get_method(name).facts for name in available_methods()}


def get_method(name: str) -> MethodSpec:
    _load_families()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def make_config(method: str, **options) -> MethodConfig:
    """Config of ``method`` with ``options`` overriding its defaults; unknown options fail
    in one line naming the valid ones."""
    spec = get_method(method)
    fields = {f.name for f in dataclasses.fields(spec.config_class)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(
            f"method {method!r} has no option(s) {', '.join(unknown)}; "
            f"its options are {', '.join(sorted(fields)) or 'none'}"
        )
    kwargs = {**spec.defaults, **options}
    for f in dataclasses.fields(spec.config_class):  # JSON/TOML give lists; configs use tuples
        if isinstance(kwargs.get(f.name), list):
            kwargs[f.name] = tuple(kwargs[f.name])
    return spec.config_class(**kwargs)


def method_name(config: MethodConfig) -> str:
    """Registry name of ``config`` (one config class per registered name)."""
    return type(config).method


def config_from_dict(d: dict) -> MethodConfig:
    """Inverse of :meth:`MethodConfig.to_dict`."""
    d = dict(d)
    if "method" not in d:
        raise ValueError("method config has no 'method' entry")
    return make_config(d.pop("method"), **d)


def apply_method(model: nn.Module, config: MethodConfig, stage: int | None = None) -> nn.Module:
    """Inject ``config``'s method into ``model`` and return it (possibly wrapped, e.g. by PEFT).

    ``stage=None`` builds all stages; ``stage=k`` (1-based) runs only stage ``k``'s step,
    on a model that already went through stages ``< k``.  Stage 1 (and ``None``) first
    freezes every parameter, so afterwards exactly the method's parameters are trainable.
    """
    spec = get_method(method_name(config))
    n = type(config).num_stages
    stages = range(1, n + 1) if stage is None else [stage]
    if stage is not None and not 1 <= stage <= n:
        raise ValueError(f"method {spec.name} has {n} stage(s); got stage={stage}")
    arch: ArchSpec | None = None
    if not spec.facts.trains_all_weights:  # full fine-tuning needs no sites
        arch = architecture_of(model)
    for k in stages:
        if k == 1:
            for p in model.parameters():
                p.requires_grad_(False)
        model = spec.apply(model, config, arch, k)
        if config.train_head:
            for p in head_parameters(model):
                p.requires_grad_(True)
    if count_parameters(model).trainable == 0:
        raise ValueError(
            f"method {spec.name} left no trainable parameter in {type(model).__name__}; "
            "check its target towers"
        )
    return model


_HEADS = ("adapter_task_head", "classifier", "score")  # classification heads, by attribute


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of ``model``'s task head: a classification head (``adapter_task_head``,
    ``classifier``, ``score``) if it has one, else its output embeddings (the LM head; where
    they are tied to the input embeddings, that one shared matrix).  ValueError if none."""
    from repspace.layer_table import unwrap_model

    root = unwrap_model(model)
    for name in _HEADS:
        head = getattr(root, name, None)
        if isinstance(head, nn.Module) and any(True for _ in head.parameters()):
            return list(head.parameters())
    get = getattr(root, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Module):
        return list(head.parameters())
    raise ValueError(
        f"train_head: {type(root).__name__} has no task head (classifier, score or "
        "output embeddings) to train"
    )


def count_parameters(model: nn.Module) -> ParamCount:
    """Trainable and total parameter counts (shared tensors counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return ParamCount(trainable, total)


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{parameter name: detached CPU tensor}`` of the trainable parameters only."""
    return {
        n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad
    }


def load_trainable_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, *, full: bool = False
) -> None:
    """Copy ``state`` into ``model`` strictly: every *trainable* parameter (``full``: every
    parameter) must be present with its shape, and nothing unknown may be in ``state``;
    otherwise a one-line :class:`~repspace.checkpoints.CheckpointError` (a ValueError) naming
    ``source``.  The one strict loader of trained weights (run folders and resumed states)."""
    params = dict(model.named_parameters())
    need = set(params) if full else {n for n, p in params.items() if p.requires_grad}
    missing = sorted(need - set(state))
    extra = sorted(set(state) - set(params))
    if missing or extra:
        parts = [f"missing {len(missing)} (e.g. {missing[0]})"] if missing else []
        parts += [f"unexpected {len(extra)} (e.g. {extra[0]})"] if extra else []
        raise CheckpointError(
            f"{source}: weights do not fit the rebuilt model ({'; '.join(parts)}); "
            "was it trained with a different method config, base or repspace "
            "version?"
        )
    for n, t in state.items():
        if tuple(t.shape) != tuple(params[n].shape):
            raise CheckpointError(
                f"{source}: {n} has shape {tuple(t.shape)}, the rebuilt model "
                f"expects {tuple(params[n].shape)}"
            )
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(dtype=params[n].dtype, device=params[n].device))


def generation_kwargs(model: nn.Module) -> dict[str, Any]:
    """Extra ``generate()`` keyword arguments an injected method needs (e.g. ``use_cache=False``
    for methods that re-prepend virtual tokens on every call)."""
    out: dict[str, Any] = {}
    for m in model.modules():
        out.update(getattr(m, "repspace_generation_kwargs", None) or {})
    return out
