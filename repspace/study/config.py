"""`StudyConfig`: one study's grid and settings, loaded from TOML or YAML and validated.

A study trains every cell of the grid ``tasks × methods × budgets × data_fractions × seeds``
and compares each trained run with the base.  The method ``"base"`` means *no training*:
its cell compares the base with itself and is the reference every plot draws against.

File format (TOML; YAML takes the same keys)::

    name = "demo"
    base = "embedded"                      # any checkpoint spec load_checkpoint accepts
    tasks = ["vqa"]                        # "vqa" | "captioning"
    methods = ["base", "lora", "prefix"]   # "adapter@parallel": a second option set of
                                           # adapter, with its own [options."adapter@parallel"]
    seeds = [0, 1, 2]
    data_fractions = [0.25, 1.0]
    steps = 100                            # or {default = 100, prefix = 200}
    batch_size = 16
    lr = {prefix = 3e-2}                   # or one float; unset: the method's default
    n_train = 512                          # shapes-world sizes and domain
    n_eval = 64
    domain = "source"
    output_dir = "studies/demo"            # default: studies/<name> (older spelling: output)
    summary_layer = -1                     # layer index the one-number summaries use
    track_every = 50                       # distortion trajectories (off when unset)
    track_samples = 64

    [options.lora]                         # make_config("lora", r=8, ...)
    r = 8
    [budgets]                              # values of each method's budget_field
    lora = [2, 8, 32]
    [train]                                # any other TrainConfig field
    warmup_ratio = 0.1
    [compare]                              # any CompareConfig field (compare() settings)
    probe = ["builtin", "general"]         # default: the task's probe + general text
    num_samples = 256
    layers = "blocks"
    batch_size = 32

Every error is one line naming the file and the key.  A study file is small: one above
:data:`MAX_FILE_BYTES`, one whose values expand (YAML anchors and aliases) to more than
:data:`MAX_EXPANDED` values and characters, or one whose grid has more than :data:`MAX_CELLS`
cells is refused before anything else reads it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from repspace._constraints import Check, Interval, Options, SettingError, Types, Validated
from repspace.compare.settings import MAX_SEED, CompareConfig

__all__ = [
    "StudyConfig",
    "CompareSettings",
    "BASE_METHOD",
    "TASKS",
    "load_study_config",
    "method_name",
    "grid_size",
    "MAX_CELLS",
    "MAX_EXPANDED",
    "MAX_FILE_BYTES",
]

BASE_METHOD = "base"
# Bounds of a study file (docs/security.md): a real one is a few kB with a few dozen values.
MAX_FILE_BYTES = 1 << 20
MAX_EXPANDED = 1_000_000  # values + characters once aliases are expanded
MAX_CELLS = 10_000  # tasks x methods x budgets x data fractions x seeds


def method_name(entry: str) -> str:
    """The registry method of a study's method entry: ``"adapter@parallel"`` -> ``"adapter"``.

    ``METHOD@VARIANT`` entries let one study hold two option sets of one method (Tian et al.'s
    serial vs parallel adapter, PEFT vs PEFT + head): each entry is its own row of every
    table, with its own ``[options."METHOD@VARIANT"]``, ``steps`` and ``lr`` keys (falling back
    to the plain method's, then ``default``)."""
    return entry.split("@", 1)[0]


TASKS = ("vqa", "captioning", "classify")
# Distortion on the task's own inputs and on general text can disagree (docs/reproduction.md):
# a study measures both unless told otherwise.  The first probe is the primary one (the
# ``metrics`` of a cell and every un-prefixed table column); the others add columns.
DEFAULT_PROBES = ("builtin", "general")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")  # a study folder's name
_TOP_KEYS = (
    "name",
    "base",
    "tasks",
    "methods",
    "options",
    "budgets",
    "data_fractions",
    "seeds",
    "steps",
    "batch_size",
    "lr",
    "n_train",
    "n_eval",
    "domain",
    "image_size",
    "train",
    "compare",
    "output_dir",
    "summary_layer",
    "track_every",
    "track_samples",
)
# Older spellings still read: key -> its name now (both given: an error).
_OLD_KEYS = {"output": "output_dir"}
# TrainConfig fields the study sets itself; [train] may not set them.
_OWNED_TRAIN_FIELDS = (
    "base",
    "method",
    "method_options",
    "task",
    "domain",
    "data_fraction",
    "n_train",
    "n_eval",
    "image_size",
    "steps",
    "batch_size",
    "lr",
    "seed",
    "output_dir",
)


def _probes(value) -> bool:
    """One probe source, or a non-empty list of distinct ones."""
    if isinstance(value, str):
        return bool(value.strip())
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, str) and v.strip() for v in value)
        and len(set(value)) == len(value)
    )


@dataclass(frozen=True)
class CompareSettings(CompareConfig):
    """Every cell's ``compare(base, [run])`` settings: a :class:`~repspace.compare.
    CompareConfig` (the same fields, checks and ``to_dict``; part of each cell's cache key)
    with the study's own defaults, declared here as overrides and nowhere else:

    - ``probe``: one probe source or several, compared one after the other (the first is
      the primary probe).  A probe after the first that the base cannot read (e.g. general
      text on a closed-vocabulary model) is recorded as skipped in the cell, with the reason.
      Default: the task's own probe and general text.
    - ``num_samples`` 256 (at least 4, not None) and ``sample_rows`` 512 (a study compares
      hundreds of cells);
    - ``pooling``: one row per sample (not ``tokens``);
    - ``progress`` False and ``distributed`` False (the study shows its own progress and
      runs each compare in its process).
    """

    probe: str | tuple[str, ...] = DEFAULT_PROBES
    num_samples: int | None = 256
    sample_rows: int = 512
    progress: bool = False
    distributed: bool | None = False

    _constraints: ClassVar = {
        **CompareConfig._constraints,
        "probe": [
            Check(
                _probes,
                "a probe source or a list of distinct ones (builtin, general, a file or a folder)",
            )
        ],
        "num_samples": [Interval(int, 4, None)],  # the metrics need 4 rows; a size to estimate
        "pooling": [Options("mean", "first", "cls", "last")],  # one row per sample
    }

    def __post_init__(self):
        for name in ("probe", "layers", "metrics", "spectrum_layers"):  # TOML lists: tuples
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        super().__post_init__()

    @property
    def probes(self) -> tuple[str, ...]:
        """The probe sources, primary first."""
        return (self.probe,) if isinstance(self.probe, str) else tuple(self.probe)

    def compare_kwargs(self, probe: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`repspace.compare.compare` on one ``probe`` (default:
        the primary one)."""
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(CompareConfig)}
        kwargs["probe"] = probe or self.probes[0]
        return kwargs


def _per_method_or(constraint):
    """``constraint`` for one value, or for every value of a ``{method or "default": value}``
    table."""
    return Check(
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and constraint.accepts(x) for k, x in v.items())
        ),
        f"or a table of method → {constraint.describe()}",
    )


def _items(constraint, name: str):
    """A non-empty list of values ``constraint`` accepts."""
    return Check(
        lambda v: (
            isinstance(v, (list, tuple)) and len(v) > 0 and all(constraint.accepts(x) for x in v)
        ),
        f"a non-empty list of {name}",
    )


_STEPS = Interval(int, 1, None)
_LR = Interval(float, 0, None, closed="neither")


@dataclass(frozen=True)
class StudyConfig(Validated):
    """A validated study.  Build with :func:`load_study_config` or :meth:`from_dict`; one
    made directly is checked the same way (``_constraints``), naming the field."""

    _command: ClassVar = "study"
    _constraints: ClassVar = {
        "name": [
            Check(
                lambda v: isinstance(v, str) and _NAME.fullmatch(v) is not None,
                "letters, digits and _ . + - (starting with a letter or digit, at most "
                "100; it names the study folder)",
            )
        ],
        "methods": [_items(Types(str), "method names")],
        "base": [Types(str, Path, name="a checkpoint")],
        "tasks": [_items(Options(*TASKS), "tasks (" + ", ".join(TASKS) + ")")],
        "data_fractions": [_items(Interval(float, 0, 1, closed="right"), "numbers in (0, 1]")],
        "seeds": [_items(Interval(int, 0, MAX_SEED), f"integers from 0 to {MAX_SEED}")],
        "steps": [_STEPS, _per_method_or(_STEPS)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [_LR, _per_method_or(_LR), None],
        "n_train": [Interval(int, 1, None)],
        "n_eval": [Interval(int, 1, None)],
        "domain": [Check(lambda v: isinstance(v, str) and v.strip() != "", "a domain name")],
        "image_size": [Interval(int, 8, None), None],
        "output_dir": [Types(str, Path, name="a folder"), None],
        "summary_layer": [Interval(int)],
        "track_every": [Interval(int, 1, None), None],
        "track_samples": [Interval(int, 4, None)],
    }

    name: str
    methods: tuple[str, ...]
    base: str = "embedded"
    tasks: tuple[str, ...] = ("vqa",)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, tuple] = field(default_factory=dict)
    data_fractions: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = (0,)
    steps: int | dict[str, int] = 100
    batch_size: int = 16
    lr: float | dict[str, float] | None = None
    n_train: int = 512
    n_eval: int = 64
    domain: str = "source"
    image_size: int | None = None
    train: dict[str, Any] = field(default_factory=dict)
    compare: CompareSettings = field(default_factory=CompareSettings)
    output_dir: str | None = None
    summary_layer: int = -1
    # `train --track-every`: each trained cell measures its distortion every N steps on
    # track_samples rows of the primary probe (None: off; docs/study.md#trajectories)
    track_every: int | None = None
    track_samples: int = 128
    source: str = "<dict>"

    # -- per-method lookups -------------------------------------------------------------
    def steps_for(self, method: str) -> int:
        if isinstance(self.steps, dict):
            return int(
                self.steps.get(
                    method, self.steps.get(method_name(method), self.steps.get("default", 100))
                )
            )
        return int(self.steps)

    def lr_for(self, method: str) -> float | None:
        if isinstance(self.lr, dict):
            value = self.lr.get(method, self.lr.get(method_name(method), self.lr.get("default")))
            return None if value is None else float(value)
        return None if self.lr is None else float(self.lr)

    def budgets_for(self, method: str) -> tuple:
        """The budget values swept for ``method``; ``(None,)`` means its configured default."""
        return tuple(self.budgets.get(method, ())) or (None,)

    @property
    def trained_methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if m != BASE_METHOD)

    def study_dir(self) -> Path:
        """The study folder: ``output_dir``, else ``studies/<name>``."""
        return Path(self.output_dir) if self.output_dir else Path("studies") / self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the study folder's ``study.json``); ``from_dict`` inverts it."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        d["compare"] = self.compare.to_dict()
        return json.loads(json.dumps(d, default=list))

    def replace(self, **changes) -> "StudyConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(
        cls, data: dict, source: str = "<dict>", check_methods: bool = True
    ) -> "StudyConfig":
        return _parse(data, source, check_methods)


def load_study_config(path: str | Path, check_methods: bool = True) -> StudyConfig:
    """Read and validate a study file (``.toml``, ``.yaml``/``.yml``, or ``.json``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"study config {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ValueError(
            f"{path}: unknown study config format {suffix!r}; use .toml, .yaml or .json"
        )
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(
            f"study config {path} is {size:,} bytes, more than {MAX_FILE_BYTES:,}; a "
            "study file is a few keys — is this the right file?"
        )
    from repspace.data._io import read_text

    text = read_text(path, "study config")  # UTF-8, a byte-order mark dropped
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # tomllib/yaml/json parse errors: one line with the position
        kind = {".yml": "YAML"}.get(suffix, suffix[1:].upper())
        raise ValueError(f"{path}: not valid {kind}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: the study config must be a table of keys, got {type(data).__name__}"
        )
    _check_expansion(data, str(path))
    return _parse(data, str(path), check_methods)


def _check_expansion(data, source: str) -> None:
    """Refuse ``data`` when it expands to more than :data:`MAX_EXPANDED` values and
    characters, or refers to itself.  YAML anchors and aliases make a 1 kB file a structure
    of billions of values ("billion laughs"): PyYAML shares the repeated parts, so loading is
    cheap, but anything that walks them (a hash of the config, an error message, study.json)
    would not finish.  Sizes are counted with each shared part counted once per use, without
    walking it more than once."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[object, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        if isinstance(node, dict):
            children = [*node.keys(), *node.values()]
        elif isinstance(node, (list, tuple)):
            children = list(node)
        else:
            continue
        key = id(node)
        if done:
            active.discard(key)
            total = 1 + sum(
                sizes[id(c)]
                if isinstance(c, (dict, list, tuple))
                else 1 + (len(c) if isinstance(c, str) else 0)
                for c in children
            )
            sizes[key] = min(total, MAX_EXPANDED + 1)
            if total > MAX_EXPANDED:
                raise ValueError(
                    f"{source}: expands to more than {MAX_EXPANDED:,} values and "
                    "characters (YAML anchors and aliases repeating parts of the "
                    "file); a study config is a few keys — write it without aliases"
                )
            continue
        if key in sizes:
            continue
        if key in active:
            raise ValueError(
                f"{source}: refers to itself (a recursive YAML alias); write the study "
                "config without aliases"
            )
        active.add(key)
        stack.append((node, True))
        stack.extend(
            (c, False)
            for c in children
            if isinstance(c, (dict, list, tuple)) and id(c) not in sizes
        )


# -- validation ---------------------------------------------------------------------------
class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str):
        raise ValueError(f"{self.source}: key {key!r}: {problem}")

    def str_(self, key, v) -> str:
        if not isinstance(v, str) or not v.strip():
            self.fail(key, f"must be a non-empty string, got {v!r}")
        return v

    def int_(self, key, v, low: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(key, f"must be an integer, got {v!r}")
        if low is not None and v < low:
            self.fail(key, f"must be ≥ {low}, got {v}")
        return v

    def float_(self, key, v, low_open: float | None = None, high: float | None = None) -> float:
        if isinstance(v, str) and self.source.endswith((".yaml", ".yml")):
            try:  # YAML 1.1 reads 1e-3 (no dot) as a string
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(key, f"must be a number, got {v!r}")
        if low_open is not None and v <= low_open:
            self.fail(key, f"must be > {low_open}, got {v}")
        if high is not None and v > high:
            self.fail(key, f"must be ≤ {high}, got {v}")
        return float(v)

    def list_(self, key, v, item, unique: bool = True) -> tuple:
        if not isinstance(v, (list, tuple)) or not v:
            self.fail(key, f"must be a non-empty list, got {v!r}")
        out = tuple(item(f"{key}[{i}]", x) for i, x in enumerate(v))
        try:
            duplicates = unique and len(set(out)) != len(out)
        except TypeError:  # a list or table where a number or a name belongs
            self.fail(key, f"must be a list of numbers or names, got {v!r}")
        if duplicates:
            self.fail(key, f"has duplicates: {list(out)}")
        return out

    def table(self, key, v) -> dict:
        if not isinstance(v, dict):
            self.fail(key, f"must be a table/mapping, got {v!r}")
        return v


def _known_methods(check: bool) -> list[str] | None:
    if not check:
        return None
    from repspace.methods import available_methods

    return available_methods()


def _budget_field(method: str) -> str | None:
    from repspace.methods import get_method

    return get_method(method_name(method)).config_class.budget_field


def _per_method(c: _Checker, key: str, v, methods: tuple, item) -> Any:
    """A scalar, or a table ``{method or "default": value}``."""
    if isinstance(v, dict):
        out = {}
        for m, x in v.items():
            if m != "default" and m not in methods:
                c.fail(
                    f"{key}.{m}",
                    f"{m!r} is not one of the study's methods ({', '.join(methods)}) nor 'default'",
                )
            out[m] = item(f"{key}.{m}", x)
        return out
    return item(key, v)


def _parse(data: dict, source: str, check_methods: bool) -> StudyConfig:
    c = _Checker(source)
    data = {k: v for k, v in data.items() if v is not None}  # YAML `key: null` = unset
    for old, new in _OLD_KEYS.items():
        if old in data:
            if new in data:
                c.fail(old, f"is the older spelling of {new!r}; give only {new!r}")
            data[new] = data.pop(old)
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        c.fail(unknown[0], f"unknown key; valid keys are {', '.join(_TOP_KEYS)}")
    if "methods" not in data:
        c.fail("methods", 'missing; list the methods to train ("base" = the untrained model)')
    kw: dict[str, Any] = {"source": source}
    kw["name"] = c.str_(
        "name", data.get("name", Path(source).stem if source != "<dict>" else "study")
    )
    if not _NAME.fullmatch(kw["name"]):
        # it becomes the folder studies/<name>: no separators, no "..", no hidden names
        c.fail(
            "name",
            "must be letters, digits and _ . + - (starting with a letter or digit, at "
            "most 100); it names the study folder",
        )
    known = _known_methods(check_methods)

    def method_item(key, m):
        c.str_(key, m)
        name, _, variant = m.partition("@")
        if "@" in m and not re.fullmatch(r"[A-Za-z0-9_+-]{1,40}", variant):
            c.fail(
                key,
                f"{m!r}: a variant is METHOD@NAME, NAME of letters, digits, _ + - "
                "(e.g. adapter@parallel)",
            )
        if known is not None and m != BASE_METHOD and name not in known:
            c.fail(key, f"unknown method {name!r}; choose from {BASE_METHOD}, {', '.join(known)}")
        return m

    methods = c.list_("methods", data["methods"], method_item)
    kw["methods"] = methods
    if "base" in data:
        kw["base"] = c.str_("base", data["base"])

    def task_item(key, t):
        if t not in TASKS:
            c.fail(key, f"unknown task {t!r}; choose from {', '.join(TASKS)}")
        return t

    if "tasks" in data:
        kw["tasks"] = c.list_("tasks", data["tasks"], task_item)
    if "data_fractions" in data:
        kw["data_fractions"] = c.list_(
            "data_fractions",
            data["data_fractions"],
            lambda k, v: c.float_(k, v, low_open=0.0, high=1.0),
        )
    if "seeds" in data:
        kw["seeds"] = c.list_("seeds", data["seeds"], lambda k, v: c.int_(k, v, low=0))
    if "steps" in data:
        kw["steps"] = _per_method(
            c, "steps", data["steps"], methods, lambda k, v: c.int_(k, v, low=1)
        )
    if "lr" in data:
        kw["lr"] = _per_method(
            c, "lr", data["lr"], methods, lambda k, v: c.float_(k, v, low_open=0.0)
        )
    for key in ("batch_size", "n_train", "n_eval", "image_size", "track_every", "track_samples"):
        if key in data:  # the bound StudyConfig declares, with the file's key in the message
            kw[key] = c.int_(key, data[key], low=StudyConfig._constraints[key][0].left)
    if "summary_layer" in data:
        kw["summary_layer"] = c.int_("summary_layer", data["summary_layer"])
    for key in ("domain", "output_dir"):
        if key in data:
            kw[key] = c.str_(key, data[key])
    kw["options"] = _options(c, data.get("options", {}), methods, check_methods)
    kw["budgets"] = _budgets(c, data.get("budgets", {}), methods, kw["options"], check_methods)
    if "train" in data:
        train = c.table("train", data["train"])
        from dataclasses import fields

        from repspace.training.config import TrainConfig

        settable = sorted({f.name for f in fields(TrainConfig)} - set(_OWNED_TRAIN_FIELDS))
        for k in train:
            if k in _OWNED_TRAIN_FIELDS:
                c.fail(
                    f"train.{k}",
                    "is set by the study itself; use the top-level key "
                    f"({'options' if k == 'method_options' else k})",
                )
            if k not in settable:  # a typo must not become a TypeError deep in the grid
                c.fail(f"train.{k}", f"unknown key; valid keys are {', '.join(settable)}")
        kw["train"] = dict(train)
    if "compare" in data:
        kw["compare"] = _compare(c, c.table("compare", data["compare"]))
    try:
        config = StudyConfig(**kw)
    except SettingError as exc:  # what the file-level checks above let through
        c.fail(exc.field, f"must be {exc.expected}, got {exc.value!r}")
    _check_grid(config)
    return config


def grid_size(config: StudyConfig) -> int:
    """How many cells :func:`repspace.study.grid.expand_grid` makes of ``config``: per task,
    one base cell, and budgets x data fractions x seeds cells per trained method."""
    per_task = sum(
        1
        if m == BASE_METHOD
        else len(config.budgets_for(m)) * len(config.data_fractions) * len(config.seeds)
        for m in config.methods
    )
    return len(config.tasks) * per_task


def _check_grid(config: StudyConfig) -> None:
    n = grid_size(config)
    if n > MAX_CELLS:
        budgets = sum(len(config.budgets_for(m)) for m in config.trained_methods)
        raise ValueError(
            f"{config.source}: the grid has {n:,} cells ({len(config.tasks)} task(s) x "
            f"{budgets} method budget(s) x {len(config.data_fractions)} data "
            f"fraction(s) x {len(config.seeds)} seed(s)), more than {MAX_CELLS:,}, each "
            "a training run; split it into smaller studies"
        )


def _options(c: _Checker, options, methods, check: bool) -> dict:
    c.table("options", options)
    out = {}
    for m, opts in options.items():
        if m not in methods or m == BASE_METHOD:
            c.fail(
                f"options.{m}",
                f"{m!r} is not a trained method of this study "
                f"({', '.join(x for x in methods if x != BASE_METHOD)})",
            )
        c.table(f"options.{m}", opts)
        if check:
            from repspace.methods import make_config

            try:
                make_config(method_name(m), **opts)
            except (ValueError, TypeError) as exc:
                c.fail(f"options.{m}", " ".join(str(exc).split()))
        out[m] = dict(opts)
    return out


def _budgets(c: _Checker, budgets, methods, options, check: bool) -> dict:
    c.table("budgets", budgets)
    out = {}
    for m, values in budgets.items():
        if m not in methods or m == BASE_METHOD:
            c.fail(f"budgets.{m}", f"{m!r} is not a trained method of this study")
        values = c.list_(f"budgets.{m}", values, lambda k, v: v)
        if check:
            from repspace.methods import make_config

            fld = _budget_field(m)
            if fld is None:
                c.fail(f"budgets.{m}", f"method {m!r} has no budget knob (budget_field is None)")
            if fld in options.get(m, {}):
                c.fail(f"budgets.{m}", f"options.{m}.{fld} is set too; sweep it here only")
            for i, v in enumerate(values):
                try:
                    make_config(method_name(m), **{**options.get(m, {}), fld: v})
                except (ValueError, TypeError) as exc:
                    c.fail(f"budgets.{m}[{i}]", " ".join(str(exc).split()))
        out[m] = values
    return out


def _compare(c: _Checker, data: dict) -> CompareSettings:
    settable = [f.name for f in dataclasses.fields(CompareSettings)]
    unknown = sorted(set(data) - set(settable))
    if unknown:
        c.fail(f"compare.{unknown[0]}", f"unknown key; valid keys are {', '.join(settable)}")
    try:
        return CompareSettings.from_dict(data)
    except SettingError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        c.fail(f"compare.{exc.field}", f"must be {exc.expected}, got {exc.value!r}{hint}")
