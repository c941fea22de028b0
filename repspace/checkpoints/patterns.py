"""Regular expressions from adapter configs, bounded before peft matches them.

peft treats several ``adapter_config.json`` fields as regular expressions and matches them,
with Python's backtracking ``re``, against every module name of the base model:
``target_modules`` and ``exclude_modules`` given as a string (``re.fullmatch``), and, spliced
into its own patterns, each entry of ``modules_to_save`` (``(^|.*\\.){m}($|\\..*)``),
``layers_pattern`` (``(?:^|.*?\\.){p}\\.(?P<idx>\\d+)\\.``) and the keys of ``rank_pattern`` /
``alpha_pattern`` (and the other ``*_pattern`` maps: ``(.*\\.)?({key})$``).  A pattern such as
``(a+)+$`` or ``(.*a){20}`` takes exponential time on a name that almost matches: the load
hangs inside peft, where no timeout can reach it.

So each pattern is checked *as peft composes it*, at the door (when ``adapter_config.json``
is read, before the base model is loaded), and refused in one line naming the file, the
field and the pattern unless its structure bounds the work:

- no repeated group that itself contains a repetition, an alternation or an optional part
  (``(a+)+``, ``(a|ab)*``, ``(a?){30}``): the cases with exponentially many ways to split a
  name;
- no backreferences (``\\1``, ``(?P=name)``) or conditionals;
- at most :data:`MAX_VARIABLE_REPEATS` variable-length repetitions in the whole composed
  pattern (``.*``, ``\\d+``, ``x{1,5}``; fixed counts such as ``\\d{2}`` and optional parts
  do not count), so the work per module name is at most cubic in its length — a few
  milliseconds for a 100-character name in the worst case (peft's documented example
  ``.*decoder.*(self_attn|encoder_attn).*(q_proj|v_proj)$`` uses three);
- at most :data:`MAX_PATTERN_CHARS` characters.

A bounded-time match (the ``regex`` package's ``timeout``) was the alternative; it would
bound repspace's own match but not peft's, which runs the same pattern again with ``re``.
"""

from __future__ import annotations

import re
from pathlib import Path

from repspace.checkpoints.errors import CheckpointError

try:  # Python 3.11+: the parser is private but stable; 3.10 and earlier: sre_parse
    import re._constants as _c
    import re._parser as _parser
except ImportError:  # pragma: no cover
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

__all__ = ["check_adapter_patterns", "check_pattern", "MAX_VARIABLE_REPEATS", "MAX_PATTERN_CHARS"]

MAX_VARIABLE_REPEATS = 3
MAX_PATTERN_CHARS = 1000
_POSSESSIVE = getattr(_c, "POSSESSIVE_REPEAT", None)
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT} | ({_POSSESSIVE} if _POSSESSIVE is not None else set())
_NESTING = {_c.SUBPATTERN, _c.ATOMIC_GROUP} if hasattr(_c, "ATOMIC_GROUP") else {_c.SUBPATTERN}
_LOOK = {_c.ASSERT, _c.ASSERT_NOT}
_BACKREF = {
    getattr(_c, name, None)
    for name in (
        "GROUPREF",
        "GROUPREF_EXISTS",
        "GROUPREF_IGNORE",
        "GROUPREF_LOC_IGNORE",
        "GROUPREF_UNI_IGNORE",
    )
} - {None}


def _children(op, av) -> list:
    """The sub-patterns of one parsed node."""
    if op in _REPEATS:
        return [av[2]]
    if op is _c.SUBPATTERN:
        return [av[-1]]  # (group, add_flags, del_flags, pattern)
    if op in _NESTING:  # an atomic group: the pattern itself
        return [av]
    if op in _LOOK:
        return [av[1]]
    if op is _c.BRANCH:
        return list(av[1])
    return []


def _walk(items):
    for op, av in items:
        yield op, av
        for child in _children(op, av):
            yield from _walk(child)


def _problem(parsed) -> str | None:
    """Why a parsed pattern can backtrack without bound (None: it cannot)."""
    variable = 0
    for op, av in _walk(parsed):
        if op in _BACKREF:
            return "a backreference or conditional"
        if op in _REPEATS:
            low, high, body = av
            if low != high and high > 1:  # an optional part (?) only doubles the ways
                variable += 1
            if high > 1 and op is not _POSSESSIVE:
                for inner, _ in _walk(body):
                    if inner in _REPEATS or inner is _c.BRANCH:
                        return (
                            "a repeated group that itself contains a repetition or an "
                            "alternation (nested quantifiers: exponential backtracking)"
                        )
    if variable > MAX_VARIABLE_REPEATS:
        return (
            f"{variable} variable-length repetitions (at most {MAX_VARIABLE_REPEATS}: the "
            "matching time grows with the name's length to that power)"
        )
    return None


def check_pattern(pattern, composed: str, source: Path, field: str) -> None:
    """Refuse ``pattern`` (from ``field`` of ``source``) unless ``composed`` -- the regex peft
    builds around it -- compiles and has a bounded matching time (see the module docstring)."""
    shown = pattern if len(str(pattern)) <= 120 else str(pattern)[:120] + "…"
    if len(composed) > MAX_PATTERN_CHARS:
        raise CheckpointError(
            f"{source}: {field} {shown!r} is {len(str(pattern))} characters; "
            f"at most {MAX_PATTERN_CHARS} are accepted in a module pattern: "
            "list the module names instead"
        )
    try:
        parsed = _parser.parse(composed)
    except (re.error, RecursionError, OverflowError) as exc:
        raise CheckpointError(
            f"{source}: {field} {shown!r} is not a valid regular expression "
            f"({exc}); fix or re-save the adapter"
        ) from None
    why = _problem(parsed)
    if why:
        raise CheckpointError(
            f"{source}: refused — {field} {shown!r} is a regular expression peft would match "
            f"against every module name, and it has {why}, so matching could take hours; "
            "use a simpler pattern or a list of module names"
        )


def check_adapter_patterns(cfg: dict, source: Path) -> None:
    """Every regex-bearing field of an adapter config, as peft uses it."""
    for field in ("target_modules", "exclude_modules"):
        value = cfg.get(field)
        if isinstance(value, str):
            check_pattern(value, value, source, field)
    modules = cfg.get("modules_to_save")
    if isinstance(modules, list):
        for m in modules:
            if isinstance(m, str):
                check_pattern(m, rf"(^|.*\.){m}($|\..*)", source, "modules_to_save entry")
    layers = cfg.get("layers_pattern")
    for p in [layers] if isinstance(layers, str) else layers if isinstance(layers, list) else []:
        if isinstance(p, str):
            check_pattern(p, rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.", source, "layers_pattern")
    for field, value in cfg.items():
        if field.endswith("_pattern") and isinstance(value, dict):
            for key in value:
                if isinstance(key, str):
                    check_pattern(key, rf"(.*\.)?({key})$", source, f"{field} key")
