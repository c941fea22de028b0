"""`repspace metrics`: every metric a comparison can report, read from the registry."""

from __future__ import annotations

import argparse
import dataclasses
import json

KINDS = ("closed-form", "sample")


def add_parser(sub) -> None:
    from repspace.metrics.registry import FAMILIES

    p = sub.add_parser(
        "metrics",
        help="list the metrics a comparison can report",
        description="List every metric `repspace compare --metrics` accepts, from "
        "the metric registry: its report key, family, direction, range, "
        "how it is computed (closed-form: exact from the streaming "
        "statistics at any n; sample: on the bounded, seeded row "
        "sample), what it is invariant to, what it needs, and whether a "
        "plain compare computes it.",
    )
    p.add_argument("--family", choices=FAMILIES, metavar="FAMILY", help="only this family")
    p.add_argument(
        "--kind", choices=KINDS, help="only the closed-form or only the sample-based ones"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def rows(family: str | None = None, kind: str | None = None) -> list[dict]:
    """The registry's entries as dictionaries, filtered by ``family`` and ``kind``."""
    from repspace.metrics.registry import REGISTRY

    return [
        {**dataclasses.asdict(m), "invariant_to": list(m.invariant_to)}
        for m in REGISTRY.values()
        if (family is None or m.family == family) and (kind is None or m.kind == kind)
    ]


def text(entries: list[dict]) -> str:
    """Two lines a metric: the key and what kind of number it is, then what it is, what it
    is invariant to and what it needs (one line each, so ``grep`` finds a key's facts)."""
    from repspace.metrics.registry import PREFIXES

    width = max((len(r["name"]) for r in entries), default=0)
    out = []
    for r in entries:
        out.append(
            f"{r['name']:<{width}}  {r['family']}; {r['direction']}, {r['range']}; "
            f"{r['kind']}{'' if r['default'] else '; opt-in'}"
        )
        needs = f"; needs {r['requires']}" if r["requires"] else ""
        out.append(
            f"{'':<{width}}  {r['description']}; invariant to {', '.join(r['invariant_to'])}{needs}"
        )
    out.append("")
    out.append(
        "--metrics takes these keys, the prefixes "
        + ", ".join(PREFIXES)
        + ", 'all' and 'default', in any mix (e.g. --metrics default,cknna)."
    )
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    entries = rows(args.family, args.kind)
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    print(text(entries))
    return 0
