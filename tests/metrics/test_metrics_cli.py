"""`repspace metrics` lists exactly the registry: every key, with what the registry says."""

import dataclasses
import json

from repspace.cli import main
from repspace.metrics.registry import FAMILIES, PREFIXES, REGISTRY


def test_lists_every_registered_metric_with_its_facts(capsys):
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    keys = [ln.split()[0] for ln in lines[0 : 2 * len(REGISTRY) : 2]]
    assert keys == list(REGISTRY)  # one two-line entry a metric, in registry order
    for i, m in enumerate(REGISTRY.values()):
        head, detail = lines[2 * i], lines[2 * i + 1]
        assert f"{m.family}; {m.direction}, {m.range}; {m.kind}" in head, m.name
        assert head.endswith("opt-in") is (not m.default), m.name
        assert m.description in detail and ", ".join(m.invariant_to) in detail, m.name
        assert (f"needs {m.requires}" in detail) is bool(m.requires), m.name
    assert all(p in lines[-1] for p in PREFIXES)


def test_json_is_the_registry(capsys):
    assert main(["metrics", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = [
        {**dataclasses.asdict(m), "invariant_to": list(m.invariant_to)} for m in REGISTRY.values()
    ]
    assert got == want


def test_filters_by_family_and_kind(capsys):
    assert main(["metrics", "--json", "--family", "intrinsic dimension", "--kind", "sample"]) == 0
    got = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert got == [k for k, m in REGISTRY.items() if m.family == "intrinsic dimension"]
    assert {"twonn_dimension_ratio", "mle_dimension_ratio", "mle_dimension_base"} <= set(got)
    assert main(["metrics", "--json", "--family", "CCA", "--kind", "sample"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert set(FAMILIES) == {m.family for m in REGISTRY.values()}


def test_unknown_family_is_a_one_line_usage_error(capsys):
    assert main(["metrics", "--family", "cka"]) == 2
    err = capsys.readouterr().err
    assert "--family" in err and "invalid choice" in err and len(err.strip().splitlines()) == 1
