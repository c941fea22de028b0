"""Issue 30: every setting of training, pretraining, the methods and the tracker is checked at
the door -- a bad value is a one-line SettingError naming the field as the caller spelled it
(``lr`` in Python, ``--lr`` in a shell), raised before any model is loaded or built.

Every way a model comes into being is made to fail loudly here (loading through
transformers or repspace, building one from a config), so a check that ran after the model
would show up as the guard's error instead of the SettingError the test expects."""

import math
import typing
from dataclasses import fields

import pytest

transformers = pytest.importorskip("transformers")

from repspace._constraints import SettingError  # noqa: E402
from repspace.cli import main  # noqa: E402
from repspace.methods import available_methods, get_method  # noqa: E402
from repspace.track import DistortionCallback, Tracker  # noqa: E402
from repspace.training import TrainConfig, train  # noqa: E402
from repspace.training.pretrain import PretrainConfig, pretrain  # noqa: E402

NAN, INF = math.nan, math.inf
TEXTS = [f"a red circle number {i}" for i in range(8)]


class ModelBuilt(AssertionError):
    """A model was loaded or built although a setting was bad."""


@pytest.fixture()
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise ModelBuilt("a model was loaded or built before the settings were checked")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(transformers.PreTrainedModel, "__init__", refuse)
    for name in dir(transformers):
        if name.startswith("AutoModel"):
            monkeypatch.setattr(getattr(transformers, name), "from_pretrained", classmethod(refuse))
    import repspace.checkpoints
    import repspace.checkpoints.loader
    import repspace.models

    monkeypatch.setattr(repspace.models, "load_embedded", refuse)
    monkeypatch.setattr(repspace.checkpoints, "load_checkpoint", refuse)
    monkeypatch.setattr(repspace.checkpoints.loader, "load_checkpoint", refuse)


def refused_naming(field: str, call) -> SettingError:
    with pytest.raises(SettingError) as exc:
        call()
    msg = str(exc.value)
    assert exc.value.field == field and msg.startswith(f"{field} must be "), msg
    assert "\n" not in msg
    return exc.value


# -- TrainConfig, through train() -------------------------------------------------------------

BAD_TRAIN = {
    "base": ["", 3, None],
    "method": ["", None, 1],
    "method_options": [[1], "r=8", {"r": object()}],
    "task": ["detection", 3],
    "domain": ["mars", None],
    "data": ["", 3],
    "data_fraction": [0.0, 1.5, NAN, INF, True, "1"],
    "data_seed": [-1, 2**32, 2**64, 1.0, True],
    "n_train": [0, -5, 1.5, True, "10"],
    "n_eval": [0, True, None],
    "image_size": [8, 17, 32.0, True],
    "steps": [0, -1, 1.5, True, "300", None],
    "batch_size": [0, -1, True, 8.0],
    "lr": [0, 0.0, 1, 2.0, -1e-3, NAN, INF, True, "1e-3"],
    "weight_decay": [-0.1, 10.5, NAN, INF, True],
    "warmup_ratio": [-0.1, 1.5, NAN, True],
    "schedule": ["step", None],
    "max_grad_norm": [NAN, INF, -INF, "1", True],
    "seed": [-1, 2**32, 2**64, 1.0, True, "0"],
    "eval_every": [0, -1, 1.5, True],
    "save_every": [0, True, None],
    "max_new_tokens": [0, True, 2.5],
    "eval_batch_size": [0, True],
    "output_dir": [3, True],
    "overwrite": ["yes", 1, None],
    "device": [0, None],
}


@pytest.mark.parametrize(
    "field,value", [(f, v) for f, vs in BAD_TRAIN.items() for v in vs], ids=lambda x: repr(x)[:20]
)
def test_train_refuses_a_bad_config_field_before_any_model(no_model, tmp_path, field, value):
    settings = {"base": "embedded", "output_dir": str(tmp_path / "run"), field: value}
    refused_naming(field, lambda: train(TrainConfig.from_options(**settings), progress=False))
    assert not (tmp_path / "run").exists()


def test_every_train_config_field_is_declared_and_exercised():
    assert set(TrainConfig._constraints) == {f.name for f in fields(TrainConfig)}
    assert set(BAD_TRAIN) == set(TrainConfig._constraints)


def test_the_seed_bound_is_compares():
    from repspace.compare.options import MAX_SEED
    from repspace.training.config import MAX_SEED as TRAIN_MAX_SEED

    assert TRAIN_MAX_SEED == MAX_SEED == 2**32 - 1
    assert TrainConfig(seed=MAX_SEED).seed == MAX_SEED


def test_an_unknown_train_setting_is_named():
    with pytest.raises(ValueError, match="unknown option.*stepz"):
        TrainConfig.from_options(stepz=3)
    with pytest.raises(ValueError, match="no field.*stepz"):
        TrainConfig.from_dict({"stepz": 3})


@pytest.mark.parametrize(
    "argument,value",
    [
        ("max_steps_this_call", 0),
        ("max_steps_this_call", True),
        ("max_steps_this_call", 1.5),
        ("track_every", 0),
        ("track_every", -1),
        ("track_every", True),
        ("track_every", 2.0),
        ("track_every", "5"),
        ("track_samples", 0),
        ("track_samples", True),
        ("track_samples", 1.5),
        ("track_probe", 3),
        ("track_probe", None),
    ],
)
def test_train_refuses_a_bad_argument_before_any_model(no_model, tmp_path, argument, value):
    kwargs = {argument: value}
    if argument.startswith("track_") and argument != "track_every":
        kwargs["track_every"] = 5
    cfg = TrainConfig(base="embedded", output_dir=str(tmp_path / "run"))
    refused_naming(argument, lambda: train(cfg, progress=False, **kwargs))
    assert not (tmp_path / "run").exists()


# -- every method's config, through train() ---------------------------------------------------


def _bad_method_values(annotation: str) -> list:
    if annotation == "bool":
        return ["yes", 1, None]
    if annotation == "int":
        return [0, -1, True, 1.5, "8", 1 << 17]
    if annotation == "float":
        return [-1.0, NAN, INF, -INF, True, "0.5"]
    if annotation == "str":
        return ["nope", 3, None]
    assert annotation.startswith("tuple"), annotation
    return [(), ("nope",), 3, None]


METHOD_CASES = [
    (m, f.name, v)
    for m in available_methods()
    for f in fields(get_method(m).config_class)
    for v in _bad_method_values(f.type if isinstance(f.type, str) else f.type.__name__)
]


def test_the_method_cases_cover_every_field_of_every_method():
    covered = {(m, f) for m, f, _ in METHOD_CASES}
    for m in available_methods():
        config = get_method(m).config_class
        assert {(m, f.name) for f in fields(config)} <= covered
        assert set(typing.get_type_hints(config)) >= {f.name for f in fields(config)}


@pytest.mark.parametrize("method,option,value", METHOD_CASES, ids=lambda x: repr(x)[:20])
def test_train_refuses_a_bad_method_option_before_any_model(
    no_model, tmp_path, method, option, value
):
    cfg = TrainConfig(
        base="embedded",
        method=method,
        method_options={option: value},
        output_dir=str(tmp_path / "run"),
    )
    refused_naming(option, lambda: train(cfg, progress=False))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method", ["lora", "adapter", "pt_lora", "full"])
def test_an_unknown_method_option_is_named_before_any_model(no_model, tmp_path, method):
    cfg = TrainConfig(
        base="embedded", method=method, method_options={"nope": 1}, output_dir=str(tmp_path / "run")
    )
    with pytest.raises(ValueError, match=f"method '{method}' has no option.*nope"):
        train(cfg, progress=False)


# -- PretrainConfig and threads, through pretrain() --------------------------------------------

BAD_PRETRAIN = {
    "seed": [-1, 2**32, 2**64, True, 1.5],
    "data_seed": [-1, 2**32, True],
    "steps": [0, -3, True, 2.5, "4"],
    "batch_size": [0, True, 8.0],
    "lr": [0, -1e-3, NAN, INF, True, "2e-3"],
    "weight_decay": [-0.1, NAN, INF],
    "warmup_ratio": [1, 1.5, -0.1, NAN],
    "max_grad_norm": [0, -1.0, NAN, INF],
    "n_train": [0, True],
    "n_eval": [1, 0, True],
    "image_size": [0, True, 32.0],
    "max_new_tokens": [0, True],
    "architecture": [{"layers": 3}, {"text_hidden": 0}, {"num_heads": True}, [4], None],
    "corpus": ["web", 3, None],
    "text_batch_size": [0, True, 1.5],
}


@pytest.mark.parametrize(
    "field,value",
    [(f, v) for f, vs in BAD_PRETRAIN.items() for v in vs],
    ids=lambda x: repr(x)[:20],
)
def test_pretrain_refuses_a_bad_setting_before_any_model(no_model, tmp_path, field, value):
    refused_naming(
        field, lambda: pretrain(None, tmp_path / "model", progress=False, **{field: value})
    )
    refused_naming(field, lambda: PretrainConfig(**{field: value}))
    assert not (tmp_path / "model").exists()


def test_every_pretrain_field_is_declared_and_exercised():
    assert set(PretrainConfig._constraints) == {f.name for f in fields(PretrainConfig)}
    assert set(BAD_PRETRAIN) == set(PretrainConfig._constraints)


@pytest.mark.parametrize("threads", [0, -1, True, 1.5, "2", 10**6])
def test_pretrain_bounds_its_threads_at_the_door(no_model, tmp_path, threads):
    import torch

    before = torch.get_num_threads()
    refused_naming(
        "threads", lambda: pretrain(None, tmp_path / "model", progress=False, threads=threads)
    )
    assert torch.get_num_threads() == before and not (tmp_path / "model").exists()


def test_pretrain_names_an_unknown_setting_and_a_wrong_config(no_model, tmp_path):
    with pytest.raises(ValueError, match="pretrain: unknown option.*stepz"):
        pretrain(None, tmp_path / "model", progress=False, stepz=3)
    refused_naming("config", lambda: pretrain({"steps": 3}, tmp_path / "model", progress=False))


# -- the tracker's settings --------------------------------------------------------------------

BAD_TRACK = {
    "every_n_steps": [0, -3, 1.5, True, "50", None],
    "batch_size": [0, True, 2.0],
    "max_length": [0, 2.0, True],
    "seed": [-1, 2**32, True, 1.5],
    "num_samples": [0, True, 2.5],
    "metrics": ["linear_cka", [], ["rbf_cka"], [3]],
    "layers": [[], "", [""], 3],
    "pooling": ["none", "avg", 3],
    "precision": ["float16", None],
}


@pytest.mark.parametrize(
    "field,value", [(f, v) for f, vs in BAD_TRACK.items() for v in vs], ids=lambda x: repr(x)[:20]
)
def test_the_tracker_refuses_a_bad_setting_before_any_model(no_model, field, value):
    # a base given as a spec would be loaded: the settings fail first
    refused_naming(field, lambda: Tracker("embedded", TEXTS, **{field: value}))
    if field != "precision":  # the callback measures in float64 only
        refused_naming(field, lambda: DistortionCallback(probe=TEXTS, **{field: value}))


def test_every_tracker_setting_is_exercised():
    from repspace.track.options import TrackSettings

    assert set(BAD_TRACK) == {f.name for f in fields(TrackSettings)}


# -- the same check: the field in Python, the option in a shell -------------------------------


def _cli_error(capsys, argv) -> str:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    "options,python,shell",
    [
        (["--lr", "2"], dict(lr=2.0), "--lr must be a number in (0, 1) or None; got 2.0"),
        (["--steps", "0"], dict(steps=0), "--steps must be an integer ≥ 1; got 0"),
        (
            ["--data-fraction", "nan"],
            dict(data_fraction=NAN),
            "--data-fraction must be a number in (0, 1]; got nan",
        ),
        (["--image-size", "8"], dict(image_size=8), "--image-size must be an integer ≥ 18; got 8"),
        (
            ["--eval-every", "0"],
            dict(eval_every=0),
            "--eval-every must be an integer ≥ 1 or None; got 0",
        ),
    ],
)
def test_train_names_the_field_in_python_and_the_option_in_a_shell(
    no_model, tmp_path, capsys, options, python, shell
):
    (field,) = python
    err = _cli_error(
        capsys, ["train", "--method", "lora", "--task", "vqa", "-o", tmp_path / "run", *options]
    )
    assert err == f"repspace train: error: {shell}", err
    refused_naming(field, lambda: TrainConfig(**python))
    assert not (tmp_path / "run").exists()


def test_train_names_a_method_option_and_the_tracker_as_the_shell_spells_them(
    no_model, tmp_path, capsys
):
    base = ["train", "--method", "lora", "--task", "vqa", "-o", tmp_path / "run"]
    err = _cli_error(capsys, [*base, "--option", "r=0"])
    assert err == "repspace train: error: --option r must be an integer from 1 to 65536; got 0", err
    err = _cli_error(capsys, [*base, "--track-every", "0"])
    assert err == "repspace train: error: --track-every must be an integer ≥ 1; got 0", err
    refused_naming(
        "track_every", lambda: train(TrainConfig(output_dir=str(tmp_path / "run")), track_every=0)
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "options,python,shell",
    [
        (["--lr", "0"], dict(lr=0.0), "--lr must be a number > 0; got 0.0"),
        (["--steps", "0"], dict(steps=0), "--steps must be an integer ≥ 1; got 0"),
        (["--n-train", "-2"], dict(n_train=-2), "--n-train must be an integer ≥ 1; got -2"),
    ],
)
def test_pretrain_names_the_field_in_python_and_the_option_in_a_shell(
    no_model, tmp_path, capsys, options, python, shell
):
    (field,) = python
    err = _cli_error(
        capsys, ["pretrain", "--quick", "--no-progress", "-o", tmp_path / "m", *options]
    )
    assert err == f"repspace pretrain: error: {shell}", err
    refused_naming(field, lambda: pretrain(None, tmp_path / "m", progress=False, **python))
    assert not (tmp_path / "m").exists()
