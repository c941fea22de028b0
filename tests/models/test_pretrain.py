"""`repspace pretrain` with --quick: complete, atomic, deterministic output folders."""

import argparse
import json
from dataclasses import replace

import pytest

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from safetensors.torch import load_file  # noqa: E402

import repspace.training.pretrain as pt  # noqa: E402
import repspace.training.pretrain.cli as pt_cli  # noqa: E402
import repspace.training.pretrain.loop as loop  # noqa: E402
from repspace.models import load_embedded  # noqa: E402

FILES = {
    "config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "pretrain_manifest.json",
}


def _parse(argv):
    parser = argparse.ArgumentParser()
    pt_cli.add_pretrain_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["pretrain", *argv])


@pytest.fixture(scope="module")
def quick_pair(tmp_path_factory):
    """Two --quick runs with the same seed (one through the CLI entry point) and one with another seed."""
    root = tmp_path_factory.mktemp("pretrain")
    assert (
        pt_cli.run_pretrain(_parse(["--quick", "--no-progress", "--output", str(root / "a")])) == 0
    )
    # the CLI's default is 1 thread; the same count here (threads=None would inherit whatever
    # an earlier test left torch with, and another count sums GEMMs in another order)
    pt.pretrain(pt.QUICK, root / "b", progress=False, threads=1)
    pt.pretrain(replace(pt.QUICK, seed=1), root / "c", progress=False)
    return root


def test_quick_run_writes_a_complete_loadable_folder(quick_pair, capsys):
    a = quick_pair / "a"
    assert FILES <= {p.name for p in a.iterdir()}
    assert sorted(p.name for p in quick_pair.iterdir()) == ["a", "b", "c"]  # no temp folders left
    m = json.loads((a / "pretrain_manifest.json").read_text())
    assert m["steps"] == pt.QUICK.steps and m["seed"] == 0 and m["recipe"] == pt.RECIPE
    assert {"cider_d", "bleu_4", "n"} <= set(m["scores"]["test"])
    assert {"torch", "transformers"} <= set(m["versions"]) and m["wall_time_s"]["total"] > 0
    model, processor = load_embedded(a)
    assert not model.training and processor.tokenizer.bos_token == "[DEC]"


def test_same_seed_same_weights_other_seed_differs(quick_pair):
    a, b, c = (load_file(quick_pair / k / "model.safetensors") for k in "abc")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a)


def test_failure_keeps_old_folder_and_leaves_no_partial_one(tmp_path, monkeypatch):
    out = tmp_path / "model"
    pt.pretrain(pt.QUICK, out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(folder):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pt, "apply_umask", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        pt.pretrain(replace(pt.QUICK, seed=5), out, progress=False)
    with pytest.raises(RuntimeError, match="disk full"):
        pt.pretrain(pt.QUICK, tmp_path / "fresh", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_output_and_config_validation(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a `repspace pretrain` model folder"):
        pt.pretrain(pt.QUICK, tmp_path, progress=False)
    with pytest.raises(ValueError, match="is a file"):
        pt.pretrain(pt.QUICK, tmp_path / "notes.txt", progress=False)
    with pytest.raises(ValueError, match="steps"):
        pt.PretrainConfig(steps=0)
    with pytest.raises(ValueError, match="n_eval"):
        pt.PretrainConfig(n_eval=1)


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = loop.lr_lambda(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert (
        f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    )


def test_threads_are_restored_and_validated(tmp_path):
    import torch

    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="threads"):
        pt.pretrain(pt.QUICK, tmp_path / "x", progress=False, threads=0)
    assert torch.get_num_threads() == before and not (tmp_path / "x").exists()
