"""Turn a user's layer selection (names, globs, regexes, presets) into canonical names.

Selection syntax (a string or a list of them, unions taken in model order):

* a preset: ``"blocks"``, ``"vision"``, ``"text"``, ``"embeddings"``;
* a regex: ``re.compile(...)`` or a string prefixed ``"re:"``; full-match on the name;
* a glob (contains ``*``, ``?`` or ``[``): ``fnmatch`` semantics, where ``*`` may span
  dots, keeping only the *outermost* matches — ``"text_decoder.*.layer.*"`` selects the
  blocks ``text_decoder.bert.encoder.layer.0``, ``...1``, not their sub-modules;
* an exact canonical name, optionally with ``":input"``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from torch import nn

from repspace.capture.model_view import model_view
from repspace.layer_table import closest_names, split_input_suffix
from repspace.capture.presets import PRESETS, resolve_preset

__all__ = ["LayerSpec", "resolve_layers", "resolve_paired_layers"]

LayerSpec = str | re.Pattern | Sequence[str | re.Pattern]


def _items(spec: LayerSpec) -> list[str | re.Pattern]:
    if isinstance(spec, (str, re.Pattern)):
        return [spec]
    if isinstance(spec, Sequence) and spec and all(isinstance(s, (str, re.Pattern)) for s in spec):
        return list(spec)
    raise ValueError(
        f"layers must be a name, glob, regex ('re:...'), preset "
        f"({', '.join(PRESETS)}) or a non-empty list of them; got {spec!r}"
    )


def _outermost(matches: list[str]) -> list[str]:
    keep = []
    for name in matches:  # registration order lists parents before children
        if not any(name.startswith(k + ".") for k in keep):
            keep.append(name)
    return keep


def _match_one(model: nn.Module, item: str | re.Pattern, names: list[str]) -> list[str]:
    if isinstance(item, re.Pattern) or item.startswith("re:"):
        try:
            rx = item if isinstance(item, re.Pattern) else re.compile(item[3:])
        except re.error as exc:
            raise ValueError(f"layer regex {item!r} is invalid: {exc}") from None
        return [n for n in names if rx.fullmatch(n)]
    if item in PRESETS:
        return resolve_preset(model, item)
    if any(c in item for c in "*?["):
        return _outermost([n for n in names if fnmatch.fnmatchcase(n, item)])
    base, _ = split_input_suffix(item)
    return [item] if base in names else []


def resolve_layers(model: nn.Module, spec: LayerSpec) -> list[str]:
    """Canonical layer names selected by ``spec`` on ``model``, in model order.

    Raises ``ValueError`` naming the pattern and the closest existing names when any
    item of ``spec`` matches nothing.
    """
    names = model_view(model).names
    order = {n: i for i, n in enumerate(names)}
    chosen: list[str] = []
    for item in _items(spec):
        hits = _match_one(model, item, names)
        if not hits:
            label = item.pattern if isinstance(item, re.Pattern) else item
            what = (
                f"preset {label!r} found no such layers in {type(model).__name__}"
                if label in PRESETS
                else f"layer pattern {label!r} matches no module of {type(model).__name__}"
            )
            raise ValueError(
                f"{what}; closest names: {closest_names(label, names)} "
                "(`repspace layers MODEL` lists them all)"
            )
        chosen += [h for h in hits if h not in chosen]
    return sorted(
        chosen, key=lambda n: (order.get(split_input_suffix(n)[0], 0), not split_input_suffix(n)[1])
    )


def _some(names: list[str], k: int = 5) -> str:
    """At most ``k`` names, saying how many more there are."""
    more = f", … (+{len(names) - k} more)" if len(names) > k else ""
    return "[" + ", ".join(repr(n) for n in names[:k]) + more + "]"


def resolve_paired_layers(base: nn.Module, tuned: nn.Module, spec: LayerSpec) -> list[str]:
    """Resolve ``spec`` on both models; the selections must name the same layers."""
    b = resolve_layers(base, spec)
    try:
        t = resolve_layers(tuned, spec)
    except ValueError as exc:
        raise ValueError(
            f"layers {spec!r} match {len(b)} layers in the base model "
            f"({type(base).__name__}) but not in the tuned model "
            f"({type(tuned).__name__}): {exc}"
        ) from None
    if b != t:
        only_b = [n for n in b if n not in t]
        only_t = [n for n in t if n not in b]
        raise ValueError(
            f"layers {spec!r} select different layers in the base model "
            f"({type(base).__name__}) and the tuned model ({type(tuned).__name__}): "
            f"only in base {_some(only_b)}, only in tuned {_some(only_t)}; select "
            "names that exist in both"
        )
    return b
