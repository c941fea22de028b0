"""One vocabulary for the constraints on settings, checked once at the door.

scikit-learn's ``_parameter_constraints`` shape: a settings class declares, per field, the
list of what it accepts; :func:`validate` checks every field before anything is built and
raises a :class:`SettingError` for the first that fits none of them::

    @dataclass
    class PoolConfig(Validated):
        _constraints: ClassVar = {
            "num_samples": [Interval(int, 2, None), None],
            "pooling": [Options("mean", "first", "last")],
            "lr": [Interval(float, 0, None, closed="neither")],
        }
        num_samples: int | None = None
        pooling: str = "mean"
        lr: float = 1e-3

    PoolConfig(num_samples=0)
    # SettingError: num_samples must be an integer ≥ 2 or None; got 0

The error names the field as the API spells it.  A command line renames it to its option in
one place (:meth:`SettingError.in_vocabulary`, which :mod:`repspace.cli` applies with the
parser's own ``dest`` → option table), so ``--num-samples must be …`` in a shell and
``num_samples must be …`` in Python, from the same check.

Booleans are never integers here (``True`` is not a sample count), NaN is in no interval,
no number is infinite, and an interval's bounds are part of the message.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, ClassVar

__all__ = [
    "SettingError",
    "Interval",
    "Options",
    "Types",
    "Check",
    "validate",
    "Validated",
    "describe",
    "MAX_SEED",
    "SEED",
]


class SettingError(ValueError):
    """A setting outside what its field accepts: ``field``, ``value``, what was ``expected``.

    ``str()`` is one line naming the field as the caller spelled it."""

    def __init__(
        self,
        field: str,
        value: Any,
        expected: str,
        owner: str | None = None,
        hint: str | None = None,
    ):
        self.field, self.value, self.expected, self.owner, self.hint = (
            field,
            value,
            expected,
            owner,
            hint,
        )
        super().__init__(self._text(field))

    def _text(self, name: str) -> str:
        text = f"{name} must be {self.expected}; got {self.value!r}"
        return f"{text} ({self.hint})" if self.hint else text

    def in_vocabulary(self, names: Mapping[str, str]) -> SettingError:
        """The same error naming the field as ``names`` spells it (e.g. the CLI's
        ``{"num_samples": "--num-samples"}``); unchanged when the field is not there."""
        name = names.get(self.field)
        if name is None:
            return self
        out = SettingError(self.field, self.value, self.expected, self.owner, self.hint)
        out.args = (out._text(name),)
        return out


# -- constraints --------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bound(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


class Interval:
    """Numbers of ``kind`` (``int`` or ``float``; a float interval accepts ints too) between
    ``left`` and ``right`` (None: unbounded); ``closed`` is ``"both"`` (default),
    ``"left"``, ``"right"`` or ``"neither"``."""

    def __init__(self, kind: type, left=None, right=None, *, closed: str = "both"):
        if kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float; got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(
                f"Interval closed must be both, left, right or neither; got {closed!r}"
            )
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def accepts(self, value) -> bool:
        if not (_is_int(value) if self.kind is int else _is_real(value)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False  # no setting wants NaN, and ±inf hides a typo (1e309)
        if self.left is not None and (
            value < self.left or (value == self.left and self.closed in ("right", "neither"))
        ):
            return False
        return self.right is None or not (
            value > self.right or (value == self.right and self.closed in ("left", "neither"))
        )

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        lo, hi = self.left, self.right
        if lo is not None and hi is None:
            return f"{what} {'≥' if self.closed in ('both', 'left') else '>'} {_bound(lo)}"
        if hi is not None and lo is None:
            return f"{what} {'≤' if self.closed in ('both', 'right') else '<'} {_bound(hi)}"
        if lo is None and hi is None:
            return "a finite number" if self.kind is float else what
        if self.kind is int and self.closed == "both":
            return f"{what} from {_bound(lo)} to {_bound(hi)}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{what} in {left}{_bound(lo)}, {_bound(hi)}{right}"


class Options:
    """One of the given values (strings are compared exactly)."""

    def __init__(self, *values):
        if len(values) == 1 and not isinstance(values[0], str) and isinstance(values[0], Iterable):
            values = tuple(values[0])
        self.values = tuple(values)

    def accepts(self, value) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        shown = [str(v) for v in self.values]
        return f"one of {', '.join(shown)}" if len(shown) > 1 else shown[0]


class Types:
    """An instance of any of ``types`` (``bool`` is not an ``int``)."""

    _NAMES: ClassVar = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "True or False",
        list: "a list",
        tuple: "a tuple",
        dict: "a mapping",
    }

    def __init__(self, *types: type, name: str | None = None):
        self.types, self.name = types, name

    def accepts(self, value) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def describe(self) -> str:
        if self.name:
            return self.name
        return " or ".join(self._NAMES.get(t, f"a {t.__name__}") for t in self.types)


class Check:
    """Any rule a predicate can state: ``Check(lambda v: v % 8 == 0, "a multiple of 8")``;
    the predicate must not raise for values of the other listed constraints' types."""

    def __init__(self, predicate: Callable[[Any], bool], description: str):
        self.predicate, self.description = predicate, description

    def accepts(self, value) -> bool:
        try:
            return bool(self.predicate(value))
        except (TypeError, ValueError, AttributeError):
            return False

    def describe(self) -> str:
        return self.description


# Every seed repspace hands on reaches numpy's legacy RandomState (np.random.seed, UMAP's
# random_state, the probe subsets), which takes no more than 2**32 - 1: one bound for every
# settings class with a seed.
MAX_SEED = 2**32 - 1
SEED = Interval(int, 0, MAX_SEED)


def describe(constraints: list) -> str:
    """What a field accepts, as the error message says it."""
    parts = [c.describe() for c in constraints if c is not None]
    text = " or ".join(parts)
    return f"{text} or None" if None in constraints else text


def validate(constraints: Mapping[str, list], values, *, owner: str | None = None) -> None:
    """Check every constrained field of ``values`` (a mapping, or an object whose attributes
    are the fields); raise :class:`SettingError` for the first field no constraint accepts.
    A field absent from ``values`` is not checked (its default is the class's business)."""
    for name, allowed in constraints.items():
        if isinstance(values, Mapping):
            if name not in values:
                continue
            value = values[name]
        elif hasattr(values, name):
            value = getattr(values, name)
        else:
            continue
        if value is None and None in allowed:
            continue
        if any(c is not None and c.accepts(value) for c in allowed):
            continue
        raise SettingError(name, value, describe(allowed), owner)


def _plain(value):
    """``value`` as JSON has it: sequences as lists, mappings with their values plain, paths
    and other objects (a torch.device) as their text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


class Validated:
    """Mixin for settings dataclasses: ``__post_init__`` checks ``_constraints`` (a class
    attribute), so a bad setting fails when the settings are made, before any model loads.
    A subclass with its own ``__post_init__`` calls ``super().__post_init__()`` first."""

    _constraints: ClassVar[dict[str, list]] = {}
    _command: ClassVar[str] = "settings"  # who the fields belong to, in from_options' message

    @classmethod
    def from_options(cls, **options):
        """Settings from keyword options; an unknown name is a one-line error listing the known."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"{cls._command}: unknown option(s) {', '.join(unknown)}; the "
                f"options are {', '.join(sorted(known))}"
            )
        return cls(**options)

    def to_dict(self) -> dict:
        """Every field as a JSON-ready value (tuples become lists, paths strings);
        :meth:`from_dict` inverts it."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping):
        """Settings from a mapping of field names (as :meth:`to_dict` writes them); an unknown
        name is a one-line error listing the known, a bad value a :class:`SettingError`."""
        return cls.from_options(**dict(data))

    def __post_init__(self):
        if is_dataclass(self):
            unknown = set(self._constraints) - {f.name for f in fields(self)}
            if unknown:  # a typo in the declaration would silently check nothing
                raise TypeError(
                    f"{type(self).__name__}._constraints names no field: "
                    f"{', '.join(sorted(unknown))}"
                )
        validate(self._constraints, self, owner=type(self).__name__)
