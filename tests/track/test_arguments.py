"""Bad arguments fail before any training step, in one line naming the argument."""

import pytest

from repspace._constraints import SettingError
from repspace.track import DistortionCallback, Tracker
from tests.compare.conftest import SENTENCES, word_tokenizer
from tests.track.conftest import load_tiny


@pytest.fixture(scope="module")
def model(tiny_dir):
    return load_tiny(tiny_dir)


def one_line(exc_info, prefix):
    msg = str(exc_info.value)
    assert msg.startswith(prefix), msg
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "50", None])
def test_every_n_steps(model, value):
    for build in (
        lambda: Tracker(model, SENTENCES, every_n_steps=value),
        lambda: DistortionCallback(probe=SENTENCES, every_n_steps=value),
    ):
        with pytest.raises(ValueError) as e:
            build()
        one_line(e, "every_n_steps must be an integer ≥ 1")


@pytest.mark.parametrize(
    "probe, why",
    [
        ([], "empty"),
        (SENTENCES[:3], "at least 4"),
        ("nowhere/probe.txt", "no such file"),
        (42, "give a"),
    ],
)
def test_probe(model, probe, why):
    for build in (
        lambda: Tracker(model, probe, processor=word_tokenizer()),
        lambda: DistortionCallback(probe=probe),
    ):
        with pytest.raises(ValueError, match=why) as e:
            build()
        one_line(e, "probe: ")


def test_an_empty_probe_file(model, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError) as e:
        DistortionCallback(probe=tmp_path / "empty.txt")
    one_line(e, "probe: ")
    with pytest.raises(ValueError) as e:
        DistortionCallback(probe=None)
    one_line(e, "probe: give the probe data")


def test_a_layer_pattern_matching_nothing(model):
    with pytest.raises(ValueError) as e:
        Tracker(model, SENTENCES, layers="decoder.*", processor=word_tokenizer())
    assert "closest names" in one_line(e, "layers: layer pattern 'decoder.*' matches no module")
    for bad in ([], "", [""], 3):
        with pytest.raises(ValueError) as e:
            DistortionCallback(probe=SENTENCES, layers=bad)
        one_line(e, "layers must be")


NOT_TRACKED = "metrics must be metrics the tracker computes (closed-form metrics"


@pytest.mark.parametrize(
    "metrics, prefix, end",
    [
        (["rbf_cka"], NOT_TRACKED, "; got ['rbf_cka']"),
        ("linear_cka", "metrics must be a non-empty list of metric names", "; got 'linear_cka'"),
        ([], "metrics must be a non-empty list of metric names", "; got []"),
        (["linear_cka", "cka_typo"], NOT_TRACKED, "; got ['cka_typo']"),
    ],
)  # only the unknown one
def test_metrics(model, metrics, prefix, end):
    with pytest.raises(SettingError) as e:
        DistortionCallback(probe=SENTENCES, metrics=metrics)
    assert one_line(e, prefix).endswith(end) and e.value.field == "metrics"


@pytest.mark.parametrize(
    "kwargs, prefix",
    [
        ({"pooling": "none"}, "pooling must be one of"),
        ({"pooling": "avg"}, "pooling must be one of"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"max_length": 2.0}, "max_length must be"),
        ({"num_samples": 0}, "num_samples must be"),
    ],
)
def test_other_settings(model, kwargs, prefix):
    with pytest.raises(ValueError) as e:
        DistortionCallback(probe=SENTENCES, **kwargs)
    one_line(e, prefix)


def test_base_and_precision_and_distributed(model):
    with pytest.raises(ValueError) as e:
        Tracker(3, SENTENCES)
    one_line(e, "base_model must be")
    with pytest.raises(ValueError) as e:
        Tracker(model, SENTENCES, precision="float16", processor=word_tokenizer())
    one_line(e, "precision must be")
    with pytest.raises(ValueError) as e:
        Tracker(model, SENTENCES, distributed=True, processor=word_tokenizer())
    one_line(e, "distributed=True but no")
    with pytest.raises(ValueError) as e:
        DistortionCallback(probe=SENTENCES, base=3.5)
    one_line(e, "base must be")


def test_a_foreign_output_folder_is_refused_before_training(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError) as e:
        DistortionCallback(probe=SENTENCES, output_dir=tmp_path / "mine")
    one_line(e, "output_dir ")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_no_processor_to_build_the_probe_with(tiny_dir):
    from transformers import BertForSequenceClassification

    bare = BertForSequenceClassification(load_tiny(tiny_dir).config)  # not loaded from a folder
    bare.config._name_or_path = ""
    with pytest.raises(ValueError) as e:
        Tracker(bare, SENTENCES)
    one_line(e, "processor: no tokenizer")
