"""The metric registry: every key a compare reports is registered, the doc table is the
registry's, and --metrics expands all / default / prefixes in any mix."""

import re
from pathlib import Path

import numpy as np
import pytest

from repspace.metrics.registry import REGISTRY, all_names, default_names, expand, markdown_table
from repspace.statistics import LayerwiseMoments

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_doc_table_is_generated_from_the_registry():
    text = DOC.read_text()
    table = re.search(r"<!-- registry:start -->\n(.*?)\n<!-- registry:end -->", text, re.S)
    assert table, "docs/metrics.md lost its registry markers"
    assert table.group(1) == markdown_table(), (
        "docs/metrics.md's metric table differs from repspace.metrics.registry: regenerate it "
        "with markdown_table()"
    )


def test_expand_all_default_prefixes_and_mixes():
    assert expand(None) is None
    assert expand(["all"]) == all_names()
    assert expand(["default"]) == default_names()
    assert expand(["all", "linear_cka_null"]) == all_names()
    assert expand(["effective_rank"]) == ["effective_rank_base", "effective_rank_tuned"]
    assert expand(["default", "cknna"])[-1] == "cknna"
    with pytest.raises(ValueError, match="unknown metric name.*'cka_linear'.*repspace metrics"):
        expand(["cka_linear"])


def test_every_closed_form_key_is_registered_and_only_opt_ins_need_asking():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 12))
    y = x @ rng.standard_normal((12, 12)) * 0.2 + x
    acc = LayerwiseMoments(precision="float64")
    acc.update({"l": x}, {"l": y})
    plain = set(acc.compute()["l", "l"])
    closed_default = {m.name for m in REGISTRY.values() if m.kind == "closed-form" and m.default}
    assert plain == closed_default
    everything = set(acc.compute(metrics=all_names())["l", "l"])
    assert everything == {m.name for m in REGISTRY.values() if m.kind == "closed-form"}


def test_registry_entries_are_complete():
    for m in REGISTRY.values():
        assert m.direction in ("similarity", "distance", "property"), m.name
        assert m.kind in ("closed-form", "sample"), m.name
        assert m.invariant_to and m.range and m.description, m.name
