"""The registry of the analyses `repspace compare` can add to its report (issue 30 item 3).

An analysis declares itself once, in its own module, with :func:`register_analysis`:

- ``name``: its key in ``result.analyses`` and report.json's ``analyses``;
- how it is asked for: its command-line :class:`Option` (flag and help) and the setting it
  sets: a :class:`~repspace.compare.settings.CompareConfig` field of its own (the option's
  ``field``: the built-in analyses, whose fields the API keeps) or, for every other
  analysis, its name in ``CompareConfig.analyses`` (what its flag adds);
- what it needs: ``separate_base`` (it reads the base as a model of its own, so one adapter
  on its base is loaded as two models); every analysis with a ``run`` runs in one process;
- ``run(context, name, checkpoint)``: its result for one tuned checkpoint (a JSON-able dict,
  or ``{"note": why}`` where it does not apply), given an :class:`AnalysisContext`; None for
  an analysis computed elsewhere (the per-segment metrics in the comparison's own capture
  pass, the permutation null as a metric);
- its report section, ``tables(result)``: :class:`Table` objects (title, description, head,
  rows, notes), none when it did not run;
- its figures: :class:`Figure` objects (a name starting with ``analysis_``, a drawing
  function and a caption).

`repspace compare` (the API, the CLI parser) and the report (report.md, report.html, the
figures and their captions) iterate the registry instead of naming each analysis.  The
registry sits at the report's floor so that both can read it: the report renders a result
without loading the comparison machinery, and `repspace.compare` adds what runs.  The
built-in analyses therefore declare in two parts (:func:`declare_analysis`, either first):
their report side in :mod:`repspace.report.analyses` (a saved result renders without
`repspace.compare`, and the CLI parser needs no matplotlib), their run side in
:mod:`repspace.compare.analyses`.  A new analysis declares everything in one call
(``tests/compare/test_adding_an_analysis.py``).

This module imports nothing heavy: the settings and the CLI parser read it without torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = [
    "Analysis",
    "AnalysisContext",
    "Figure",
    "Option",
    "Table",
    "analyses",
    "declare_analysis",
    "get_analysis",
    "register_analysis",
    "unregister_analysis",
    "wanted_analyses",
]

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_FLAG = re.compile(r"--[a-z][a-z0-9-]*\Z")


@dataclass(frozen=True)
class Option:
    """A command-line option asking for an analysis.

    ``flag`` (``--adapter-effect``) and ``help``.  ``field``: the CompareConfig field it
    sets (a built-in's own switch); None: the option is a flag that adds the analysis's
    name to ``CompareConfig.analyses``.  ``metavar`` (only with a ``field``): the option
    takes a value, turned into the field's value by ``parse`` (None: the text as given).
    """

    flag: str
    help: str
    field: str | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None

    @property
    def dest(self) -> str:
        """The argparse destination of the option (``--merge-dtype`` -> ``merge_dtype``)."""
        return self.flag[2:].replace("-", "_")


@dataclass(frozen=True)
class Table:
    """One table of an analysis's report section: ``title`` (the sub-heading),
    ``description`` (the caption under it), ``head`` and ``rows`` (text cells; no rows: the
    table is left out) and ``notes`` (a bullet each, e.g. why a checkpoint has no row)."""

    title: str
    description: str
    head: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class Figure:
    """A figure of an analysis: ``name`` (``analysis_…``: the file stem under plots/ and the
    key of report.json's ``plots``), ``plot(result, stem) -> files written`` (none: the
    figure does not apply) and ``caption(result) -> text``, as drawn."""

    name: str
    plot: Callable[[Any, Any], list]
    caption: Callable[[Any], str]


@dataclass
class AnalysisContext:
    """What an analysis's ``run`` is given: the loaded ``base`` and ``tuned`` checkpoints
    (:class:`~repspace.checkpoints.LoadedCheckpoint`), the tuned checkpoints' report
    ``names``, ``batches_fn()`` (fresh probe batches, the comparison's), the comparison's
    ``settings`` (a :class:`~repspace.compare.settings.CompareConfig`), the ``device`` the
    comparison computes on (None: where the weights were placed) and ``progress`` (show the
    analyses' own bars; None: when stderr is a terminal, decided by ``run_analyses``)."""

    base: Any
    tuned: Sequence[Any]
    names: Sequence[str]
    batches_fn: Callable[[], Any]
    settings: Any
    device: Any = None
    progress: bool | None = None


@dataclass(frozen=True)
class Analysis:
    """One registered analysis (see the module docstring for each field)."""

    name: str
    options: tuple[Option, ...] = ()
    separate_base: bool = False
    run: Callable[[AnalysisContext, str, Any], dict] | None = None
    tables: Callable[[Any], list[Table]] | None = None
    figures: tuple[Figure, ...] = ()
    order: int = 100

    @property
    def switches(self) -> tuple[str, ...]:
        """The CompareConfig fields its options set (none: it is asked for by its name in
        ``CompareConfig.analyses``)."""
        return tuple(o.field for o in self.options if o.field is not None)

    def wanted(self, settings) -> bool:
        """Whether ``settings`` (a CompareConfig) ask for this analysis."""
        if self.switches:
            return any(bool(getattr(settings, f)) for f in self.switches)
        return self.name in (getattr(settings, "analyses", None) or ())

    def flags(self) -> str:
        """Its options as the user types them (``--merge-dtype``), or its name."""
        return " / ".join(o.flag for o in self.options) or self.name


_REGISTRY: dict[str, Analysis] = {}


def _check(a: Analysis) -> Analysis:
    """One-line errors for a declaration the CLI, the settings or the report cannot use."""
    if not isinstance(a.name, str) or not _NAME.match(a.name):
        raise ValueError(
            f"register_analysis: name {a.name!r} must be snake_case "
            "(letters, digits, _): it is a key of report.json"
        )
    a = replace(a, options=tuple(a.options), figures=tuple(a.figures))
    for o in a.options:
        if not _FLAG.match(o.flag):
            raise ValueError(
                f"register_analysis {a.name}: option {o.flag!r} must look like --kebab-case"
            )
        if o.field is None and (o.metavar is not None or o.parse is not None):
            raise ValueError(
                f"register_analysis {a.name}: option {o.flag} without a field is "
                "a flag adding the name to CompareConfig.analyses (no metavar)"
            )
    if a.options and len({o.field is None for o in a.options}) > 1:
        raise ValueError(
            f"register_analysis {a.name}: its options either all set fields or "
            "all add its name to CompareConfig.analyses"
        )
    for f in a.figures:
        if not f.name.startswith("analysis_"):
            raise ValueError(
                f"register_analysis {a.name}: figure {f.name!r} must start with "
                "'analysis_' (how the report finds its caption)"
            )
    return a


def register_analysis(analysis: Analysis | None = None, /, **declared) -> Analysis:
    """Register an analysis (an :class:`Analysis`, or its fields by name); returns it.  A
    name, option flag or figure name already registered is a one-line ValueError."""
    a = _check(analysis if analysis is not None else Analysis(**declared))
    if a.name in _REGISTRY:
        raise ValueError(f"register_analysis: {a.name!r} is already registered")
    taken_flags = {o.flag: b.name for b in _REGISTRY.values() for o in b.options}
    taken_figures = {f.name: b.name for b in _REGISTRY.values() for f in b.figures}
    for o in a.options:
        if o.flag in taken_flags:
            raise ValueError(
                f"register_analysis {a.name}: option {o.flag} is already {taken_flags[o.flag]}'s"
            )
    for f in a.figures:
        if f.name in taken_figures:
            raise ValueError(
                f"register_analysis {a.name}: figure {f.name} is already {taken_figures[f.name]}'s"
            )
    _REGISTRY[a.name] = a
    return a


def declare_analysis(name: str, **declared) -> Analysis:
    """Declare part of an analysis, registering it when new: a built-in declares its report
    side (:mod:`repspace.report.analyses`) and its run side (:mod:`repspace.compare.analyses`)
    in two modules, in either order.  A field declared twice, or one :class:`Analysis` does
    not have, is a one-line ValueError (each thing is declared once)."""
    defaults = {f.name: f.default for f in fields(Analysis) if f.name != "name"}
    unknown = sorted(set(declared) - set(defaults))
    if unknown:
        raise ValueError(f"declare_analysis {name}: unknown field(s) {', '.join(unknown)}")
    old = _REGISTRY.get(name)
    if old is None:
        return register_analysis(Analysis(name=name, **declared))
    twice = [k for k in declared if getattr(old, k) != defaults[k]]
    if twice:
        raise ValueError(f"declare_analysis {name}: {', '.join(twice)} already declared")
    new = _check(replace(old, **declared))
    del _REGISTRY[name]
    try:
        register_analysis(new)
    except ValueError:
        _REGISTRY[name] = old
        raise
    return new


def unregister_analysis(name: str) -> None:
    """Remove an analysis (a plugin's or a test's); an unknown name is a one-line error."""
    if name not in _REGISTRY:
        raise ValueError(f"unregister_analysis: no analysis {name!r} is registered")
    del _REGISTRY[name]


def get_analysis(name: str) -> Analysis:
    """The analysis registered as ``name``; unknown: a one-line error listing the known."""
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown analysis {name!r}; registered: "
            f"{', '.join(a.name for a in analyses()) or 'none'}"
        )
    return _REGISTRY[name]


def analyses() -> list[Analysis]:
    """Every registered analysis, in report order (``order``, then registration)."""
    return sorted(_REGISTRY.values(), key=lambda a: a.order)


def wanted_analyses(settings) -> list[Analysis]:
    """The registered analyses with a ``run`` that ``settings`` ask for, in report order."""
    return [a for a in analyses() if a.run is not None and a.wanted(settings)]
