"""DistortionCallback under transformers.Trainer: training is bit-identical with it, the
values reach the trainer's log, and the last ones equal `repspace compare` of the checkpoint
saved at that step (full fine-tuning and a PEFT LoRA)."""

import json

import pytest
import torch
from transformers import TrainerCallback

from repspace.track import DistortionCallback, read_trajectory
from tests.compare.conftest import word_tokenizer
from tests.track.conftest import by_position, load_tiny, losses, tracked, train

METRICS = ["linear_cka", "effective_rank", "cosine_similarity_mean", "relative_shift_mean"]
STEPS = 4


@pytest.fixture(scope="module")
def runs(tiny_dir, probe_txt, tmp_path_factory):
    """The same seeded run (dropout on) without and with the callback; the tracked one saves
    its last step."""
    out = tmp_path_factory.mktemp("track-trainer")
    tok = word_tokenizer()
    plain = train(load_tiny(tiny_dir), tok, out / "plain", steps=STEPS)
    cb = DistortionCallback(probe=probe_txt, every_n_steps=2, batch_size=8, metrics=METRICS)
    seen = Integration()
    with_cb = train(
        load_tiny(tiny_dir),
        tok,
        out / "tracked",
        steps=STEPS,
        callbacks=[seen, cb],
        save_steps=STEPS,
    )
    return plain, with_cb, cb, out, seen


class Integration(TrainerCallback):
    """What a report_to integration (TensorBoardCallback, WandbCallback, …) is handed: every
    on_log call, with the step.  Listed before the tracker, as the integrations are."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append((state.global_step, dict(logs)))


def test_training_is_bit_identical_with_the_tracker(runs):
    plain, with_cb, *_ = runs
    assert plain.model.training is with_cb.model.training
    assert losses(plain) == losses(with_cb) and len(losses(plain)) == STEPS
    a, b = plain.model.state_dict(), with_cb.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_test_sees_a_callback_that_draws_random_numbers(tiny_dir, runs, tmp_path):
    """With dropout on, one random draw per step changes the run: the comparison above can fail."""

    class Draw(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            torch.rand(1)

    plain = runs[0]
    other = train(
        load_tiny(tiny_dir), word_tokenizer(), tmp_path / "draw", steps=2, callbacks=[Draw()]
    )
    assert losses(other)[:2] != losses(plain)[:2]


def test_values_reach_the_log_and_the_trajectory_folder(runs):
    _, trainer, cb, out, seen = runs
    logged = tracked(trainer)
    assert sorted(logged) == [0, 2, 4]
    layers = [f"bert.encoder.layer.{i}" for i in range(3)]
    assert set(logged[4]) == {
        f"repspace/{m}/{layer}"
        for layer in layers
        for m in (
            "linear_cka",
            "linear_cka_debiased",
            "effective_rank_base",
            "effective_rank_tuned",
            "effective_rank_ratio",
            "cosine_similarity_mean",
            "relative_shift_mean",
        )
    }
    assert all(v == pytest.approx(1.0) for k, v in logged[0].items() if "/linear_cka/" in k)
    assert all(v < 1 for k, v in logged[4].items() if "/linear_cka/" in k)
    # an integration saw them, at their steps, and still every loss
    assert {
        step: {k: v for k, v in logs.items() if k.startswith("repspace/")}
        for step, logs in seen.logs
        if any(k.startswith("repspace/") for k in logs)
    } == logged
    assert [step for step, logs in seen.logs if "loss" in logs] == [1, 2, 3, 4]
    folder = out / "tracked" / "repspace-track"
    traj = read_trajectory(folder)
    assert traj.steps == [0, 2, 4] and traj.layers == layers
    assert {
        f"repspace/{m}/{layer}": v for layer, row in traj.last().items() for m, v in row.items()
    } == logged[4]
    assert (
        (folder / "trajectory.csv").read_text().startswith("step,layer,layer_index,metric,value\n")
    )
    doc = json.loads((folder / "trajectory.json").read_text())
    assert doc["settings"]["every_n_steps"] == 2 and doc["probe"]["num_samples"] == 72
    assert {p.name for p in (folder / "figures").iterdir()} == {
        f"{stem}.{ext}"
        for stem in ("trajectory", "heatmap_linear_cka", "heatmap_effective_rank_ratio")
        for ext in ("pdf", "png")
    }


def test_last_values_equal_compare_of_the_saved_checkpoint(runs, tiny_dir, probe_txt):
    from repspace.compare import compare

    _, _, cb, out, _ = runs
    res = compare(
        str(tiny_dir),
        [str(out / "tracked" / f"checkpoint-{STEPS}")],
        probe=str(probe_txt),
        num_samples=None,
        batch_size=8,
        metrics=METRICS,
        embedding="none",
        sample_rows=0,
        progress=False,
    )
    pairs = by_position(cb.trajectory.at(STEPS), res.metrics[res.tuned_names[0]], res.layers)
    assert len(pairs) == 3 * 6
    for key, mine, theirs in pairs:
        assert mine == pytest.approx(theirs, abs=1e-6), key


def test_a_peft_model_under_trainer_equals_compare(tiny_dir, probe_txt, tmp_path):
    from peft import LoraConfig, get_peft_model

    from repspace.compare import compare

    torch.manual_seed(0)
    model = get_peft_model(
        load_tiny(tiny_dir),
        LoraConfig(r=4, lora_alpha=16, task_type="SEQ_CLS", target_modules=["query", "value"]),
    )
    cb = DistortionCallback(
        probe=probe_txt, every_n_steps=2, batch_size=8, metrics=METRICS, figures=False
    )
    train(
        model, word_tokenizer(), tmp_path / "lora", steps=2, callbacks=[cb], save_steps=2, lr=5e-2
    )
    assert cb.tracker.base_description == "the PEFT model with its adapter disabled"
    res = compare(
        str(tiny_dir),
        [str(tmp_path / "lora" / "checkpoint-2")],
        probe=str(probe_txt),
        num_samples=None,
        batch_size=8,
        metrics=METRICS,
        embedding="none",
        sample_rows=0,
        progress=False,
    )
    pairs = by_position(cb.trajectory.at(2), res.metrics[res.tuned_names[0]], res.layers)
    assert min(p[1] for p in pairs if p[0].endswith("|linear_cka")) < 1
    for key, mine, theirs in pairs:
        assert mine == pytest.approx(theirs, abs=1e-6), key


def test_a_layer_pattern_matching_nothing_fails_when_the_trainer_is_built(
    tiny_dir, probe_txt, tmp_path
):
    from transformers import Trainer, TrainingArguments

    cb = DistortionCallback(probe=probe_txt, layers="decoder.*")
    args = TrainingArguments(
        output_dir=str(tmp_path / "x"), max_steps=1, report_to=[], use_cpu=True
    )
    with pytest.raises(ValueError, match=r"^layers: layer pattern 'decoder\.\*' matches no") as e:
        Trainer(model=load_tiny(tiny_dir), args=args, callbacks=[cb])
    assert "\n" not in str(e.value)
