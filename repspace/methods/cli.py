"""`repspace methods`: the registered methods, their budget knob and options."""

from __future__ import annotations

import argparse
import dataclasses
import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "methods",
        help="list the fine-tuning methods and their options",
        description="List every registered method: its budget knob (what studies "
        "sweep), its options with defaults, and the paper it follows.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _rows() -> list[dict]:
    from repspace.methods import available_methods, get_method

    rows = []
    for name in available_methods():
        spec = get_method(name)
        cfg = spec.config_class(**spec.defaults)
        rows.append(
            {
                "method": name,
                "budget": spec.config_class.budget_field,
                "stages": spec.config_class.num_stages,
                "summary": spec.summary,
                "paper": spec.paper,
                "options": {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)},
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    rows = _rows()
    if args.json:
        print(json.dumps(rows, indent=2, default=list))
        return 0
    for r in rows:
        opts = ", ".join(f"{k}={v!r}" for k, v in r["options"].items())
        budget = f"budget: {r['budget']}" if r["budget"] else "no budget knob"
        print(f"{r['method']:<11} {r['summary']}")
        print(f"{'':<11} {budget}; options: {opts or 'none'}")
    return 0
