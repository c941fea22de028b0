"""CompareOptions: one object for the options of compare_models (the study config's CompareSettings is
the study's [compare] section, a different thing)."""
import pytest

from repspace.compare.engine import CompareOptions, compare_models


def test_unknown_options_are_a_one_line_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"^compare: unknown option\(s\) bach_size; the options are .*batch_size"):
        CompareOptions.from_options(bach_size=8)
    with pytest.raises(ValueError, match="unknown option"):
        compare_models(None, [], lambda: iter(()), bach_size=8)


def test_report_records_what_decides_the_numbers():
    s = CompareOptions(layers=("a", "b"), metrics=["linear_cka", "mmd"], device=None)
    d = s.report_dict()
    assert d["layers"] == ["a", "b"] and d["metrics"] == ["linear_cka", "mmd"]
    assert d["device"] == "cpu" and d["precision"] == "float64"
    assert CompareOptions().report_dict()["metrics"] == "all"
    assert s.wanted == {"linear_cka", "mmd"} and CompareOptions().wanted is None
