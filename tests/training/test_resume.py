"""Determinism, interruption + resume, and the output-folder rules."""

import json

import pytest
import torch
from safetensors.torch import load_file

from repspace.methods import available_methods, get_method
from repspace.training import train

from conftest import small_config


def _weights(run_dir):
    return load_file(str(run_dir / "weights.safetensors"))


def _equal(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_other_seed_differs(tiny_base, tmp_path):
    base = tiny_base("blip")
    a = train(small_config(base, tmp_path, output_dir=str(tmp_path / "a")), progress=False)
    b = train(small_config(base, tmp_path, output_dir=str(tmp_path / "b")), progress=False)
    c = train(small_config(base, tmp_path, seed=1, output_dir=str(tmp_path / "c")), progress=False)
    assert a.losses == b.losses and _equal(_weights(a.run_dir), _weights(b.run_dir))
    assert a.manifest["config_hash"] == b.manifest["config_hash"] != c.manifest["config_hash"]
    assert not _equal(_weights(a.run_dir), _weights(c.run_dir))


def _stop_at(k):
    def callback(step, loss):
        if step == k:
            raise KeyboardInterrupt

    return callback


def _resume_methods():
    names = ["full", "lora"] + [
        m for m in available_methods() if get_method(m).config_class.num_stages > 1
    ][:1]
    return [m for m in names if m in available_methods()]


@pytest.mark.parametrize("method", _resume_methods())
def test_interrupt_then_resume_equals_uninterrupted(tiny_base, tmp_path, method):
    base = tiny_base("blip")
    kw = dict(
        method=method, steps=6, save_every=100, n_train=4, batch_size=4
    )  # several batches per epoch
    ref = train(
        small_config(base, tmp_path, output_dir=str(tmp_path / "ref"), **kw), progress=False
    )
    cfg = small_config(base, tmp_path, output_dir=str(tmp_path / "cut"), **kw)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callback=_stop_at(3))  # Ctrl-C after step 3 saves the state
    assert (tmp_path / "cut" / "state" / "latest.json").is_file()
    part = train(cfg, progress=False, max_steps_this_call=1)  # resume for one step, stop again
    assert not part.finished and part.resumed_from == 3 and part.step == 4
    done = train(cfg, progress=False)
    assert done.finished and done.resumed_from == 4
    assert ref.losses[4:] == done.losses
    assert _equal(_weights(ref.run_dir), _weights(done.run_dir))
    assert ref.scores == done.scores
    steps = [
        json.loads(l)["step"]
        for l in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()
    ]
    assert steps[:6] == [1, 2, 3, 4, 5, 6]


def test_finished_run_is_returned_not_retrained(tiny_base, tmp_path):
    cfg = small_config(tiny_base("gpt2"), tmp_path)
    first = train(cfg, progress=False)
    again = train(cfg, progress=False)
    assert again.finished and again.losses == [] and again.scores == first.scores
    assert again.params == first.params


def test_changed_config_in_same_folder_is_refused_unless_overwrite(tiny_base, tmp_path):
    base = tiny_base("gpt2")
    train(small_config(base, tmp_path), progress=False)
    with pytest.raises(ValueError, match="holds a different run.*overwrite") as exc:
        train(small_config(base, tmp_path, steps=5), progress=False)
    assert "\n" not in str(exc.value)
    res = train(small_config(base, tmp_path, steps=5, overwrite=True), progress=False)
    assert res.finished and res.manifest["steps"] == 5


def test_non_run_folder_is_never_deleted(tiny_base, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no repspace run"):
        train(
            small_config(tiny_base("gpt2"), tmp_path, output_dir=str(out), overwrite=True),
            progress=False,
        )
    assert (out / "precious.txt").is_file()


def test_periodic_evaluation_is_logged(tiny_base, tmp_path):
    res = train(small_config(tiny_base("gpt2"), tmp_path, steps=4, eval_every=2), progress=False)
    lines = [json.loads(l) for l in (res.run_dir / "train_log.jsonl").read_text().splitlines()]
    evals = [l for l in lines if "eval" in l]
    assert [e["step"] for e in evals] == [2] and "vqa_accuracy" in evals[0]["eval"]
    assert "test" in lines[-1] and lines[-1]["test"] == res.scores
