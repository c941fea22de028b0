"""Round two (issue 26), `repspace study`: what the study names is checked before its first
cell (layers, the summary layer, remote code in the base, probe files, training data and
options), refused in one line with nothing written; study files are bounded (size, alias
expansion, grid size) and decoded like every data file (docs/security.md)."""

import json

import pytest

from repspace import training
from tests.hostile.conftest import refused


@pytest.fixture
def no_training(monkeypatch):
    """Refusals that must come before any cell trains: training fails the test."""

    def boom(*a, **k):
        raise AssertionError("a cell was trained before the study was checked")

    monkeypatch.setattr(training, "train", boom)


def _study(ws, body: str = "", name: str = "study.toml", compare: str = "") -> object:
    path = ws.root / name
    path.write_text(
        f'name = "t"\nbase = "{ws.base}"\ntasks = ["classify"]\nmethods = ["lora"]\n'
        f"steps = 2\nbatch_size = 4\nn_train = 8\nn_eval = 4\n{body}\n[compare]\n"
        f'probe = "{ws.probe}"\nnum_samples = 8\nbatch_size = 8\nsample_rows = 8\n'
        f"{compare}"
    )
    return path


def _run(ws, capsys, cfg, *, names, extra=()):
    out = ws.root / "work" / "s"
    return refused(
        capsys,
        ws.root,
        ["study", cfg, "-o", out, "--quiet", "--no-figures", *extra],
        names=names,
        out=out,
    )


# -- names the model does not have -----------------------------------------------------------
def test_a_summary_layer_the_model_does_not_have_is_refused(ws, capsys, no_training):
    cfg = _study(ws, "summary_layer = 30")
    line = _run(ws, capsys, cfg, names=str(cfg))
    assert "summary_layer" in line and "30" in line and "encoder.layer.2" in line


@pytest.mark.parametrize("layers", ['"encoder.layer.7"', '["encoder.layer.0", "decoder.block.*"]'])
def test_compare_layers_the_model_does_not_have_are_refused(ws, capsys, no_training, layers):
    cfg = _study(ws, compare=f"layers = {layers}\n")
    line = _run(ws, capsys, cfg, names=str(cfg))
    assert "compare.layers" in line and ("encoder.layer.7" in line or "decoder.block.*" in line)


def test_a_base_asking_for_remote_code_is_refused_like_the_dry_run(ws, capsys, no_training):
    from tests.hostile.conftest import add_auto_map

    add_auto_map(ws.base)
    cfg = _study(ws)
    dry = _run(ws, capsys, cfg, names=str(ws.base / "config.json"), extra=["--dry-run"])
    real = _run(ws, capsys, cfg, names=str(ws.base / "config.json"))
    assert real == dry and "auto_map" in real


# -- inputs decoded up front ---------------------------------------------------------------
def test_a_probe_file_that_is_not_utf8_is_refused_before_any_cell(ws, capsys, no_training):
    ws.probe.write_bytes("a red circle caf\xe9\n".encode("latin-1"))
    line = _run(ws, capsys, _study(ws), names=str(ws.probe))
    assert "UTF-8" in line


def test_one_class_training_data_is_refused_before_any_cell(ws, capsys, no_training):
    data = ws.root / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text(
            "".join(json.dumps({"text": f"shape {i}", "label": "red"}) + "\n" for i in range(6))
        )
    (data / "spec.json").write_text(
        json.dumps(
            {"task": "classify", "train": {"texts": "train.jsonl"}, "test": {"texts": "test.jsonl"}}
        )
    )
    cfg = _study(ws, f'[train]\ndata = "{data / "spec.json"}"')
    line = _run(ws, capsys, cfg, names=str(data / "train.jsonl"))
    assert "'red': 6" in line


def test_training_data_inside_the_study_folder_is_refused(ws, capsys, no_training):
    out = ws.root / "work" / "s"
    out.mkdir(parents=True)
    (out / "study.json").write_text(json.dumps({"schema": "repspace.study"}))
    (out / "train.jsonl").write_text(
        "".join(json.dumps({"text": f"shape {i}", "label": "ab"[i % 2]}) + "\n" for i in range(6))
    )
    (out / "spec.json").write_text(
        json.dumps(
            {
                "task": "classify",
                "train": {"texts": "train.jsonl"},
                "test": {"texts": "train.jsonl"},
            }
        )
    )
    cfg = _study(ws, f'[train]\ndata = "{out / "spec.json"}"')
    refused(capsys, ws.root, ["study", cfg, "-o", out, "--quiet"], names=str(out / "spec.json"))


@pytest.mark.parametrize("setting", ["max_grad_norm = nan", "max_grad_norm = inf"])
def test_a_non_finite_train_setting_is_refused_naming_it(ws, capsys, no_training, setting):
    cfg = _study(ws, f"[train]\n{setting}")
    line = _run(ws, capsys, cfg, names=str(cfg))
    assert "max_grad_norm" in line


def test_an_absurd_method_option_in_a_study_is_refused_naming_it(ws, capsys, no_training):
    cfg = _study(ws, "[options.lora]\nalpha = 1e300")
    line = _run(ws, capsys, cfg, names=str(cfg))
    assert "alpha" in line


# -- the study file itself ---------------------------------------------------------------------
def _alias_bomb(levels: int, width: int = 8) -> str:
    """YAML of a few hundred bytes whose ``eval_every`` expands to ``width ** levels`` strings."""
    items = [f"&a0 [{', '.join(['xxxxxxxx'] * width)}]"]
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "train:\n  eval_every: [" + ", ".join(items) + "]\n"


@pytest.mark.parametrize("kind", ["billion-laughs", "recursive"])
def test_a_yaml_study_that_expands_without_bound_is_refused(ws, capsys, kind):
    cfg = ws.root / "study.yaml"
    body = _alias_bomb(7) if kind == "billion-laughs" else "train:\n  eval_every: &a [1, *a]\n"
    cfg.write_text(f"name: t\nbase: {ws.base}\nmethods: [lora]\ntasks: [classify]\n{body}")
    assert cfg.stat().st_size < 1024
    line = refused(
        capsys,
        ws.root,
        ["study", cfg, "-o", ws.root / "work" / "s", "--dry-run", "--no-estimate"],
        names=str(cfg),
    )
    assert "alias" in line


def test_a_grid_beyond_the_bound_is_refused_naming_the_product(ws, capsys):
    seeds = ", ".join(str(i) for i in range(100))
    fractions = ", ".join(f"{(i + 1) / 200:g}" for i in range(200))
    cfg = _study(ws, f"seeds = [{seeds}]\ndata_fractions = [{fractions}]")
    line = refused(capsys, ws.root, ["study", cfg, "--dry-run", "--no-estimate"], names=str(cfg))
    assert "20,000 cells" in line and "200 data fraction(s) x 100 seed(s)" in line


def test_a_huge_study_file_is_refused(ws, capsys):
    cfg = _study(ws, "# " + "x" * (2 << 20))
    refused(capsys, ws.root, ["study", cfg, "--dry-run", "--no-estimate"], names=str(cfg))


def test_a_budget_that_is_a_table_is_one_line_not_a_crash(ws, capsys):
    cfg = _study(ws, "[budgets]\nlora = [[2, 4], [8]]")
    refused(capsys, ws.root, ["study", cfg, "--dry-run", "--no-estimate"], names=str(cfg))


def test_a_study_file_with_a_byte_order_mark_reads(ws, capsys):
    from repspace.cli import main

    cfg = _study(ws)
    cfg.write_bytes("\ufeff".encode() + cfg.read_bytes())
    capsys.readouterr()
    assert (
        main(["study", str(cfg), "-o", str(ws.root / "work" / "s"), "--dry-run", "--no-estimate"])
        == 0
    ), capsys.readouterr().err
    assert "classify-lora" in capsys.readouterr().out
