"""The framework-free Tracker in a plain PyTorch loop: the base captured once, each
measurement equal to `repspace compare` of the model saved at that step, and no trace left
on the training run (weights, losses, training flags)."""

import pytest
import torch

from repspace.track import Tracker
from tests.compare.conftest import SENTENCES, word_tokenizer
from tests.track.conftest import SentenceLabels, load_tiny

METRICS = ["linear_cka", "effective_rank", "cosine_similarity_mean", "relative_shift_mean"]


def plain_loop(model, steps, tracker=None, seed=0):
    """AdamW on the sentence task, dropout on; returns the losses."""
    torch.manual_seed(seed)
    data = SentenceLabels(word_tokenizer())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    out = []
    for step in range(1, steps + 1):
        idx = torch.randperm(len(data))[:8]
        batch = {k: torch.stack([data[int(i)][k] for i in idx]) for k in data[0]}
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        out.append(loss.item())
        if tracker is not None:
            tracker.maybe_measure(model, step)
    return out


@pytest.fixture(scope="module")
def looped(tiny_dir, probe_txt, tmp_path_factory):
    out = tmp_path_factory.mktemp("track-loop")
    plain = load_tiny(tiny_dir)
    plain_losses = plain_loop(plain, 3)
    model = load_tiny(tiny_dir)
    tracker = Tracker(model, probe_txt, every_n_steps=2, batch_size=8, metrics=METRICS)
    tracker.measure(model, 0)
    tracked_losses = plain_loop(model, 3, tracker)
    tracker.measure(model, 3)
    model.save_pretrained(out / "step-3")
    word_tokenizer().save_pretrained(out / "step-3")
    return plain, plain_losses, model, tracked_losses, tracker, out


def test_plain_loop_is_bit_identical_with_the_tracker(looped):
    plain, plain_losses, model, tracked_losses, tracker, _ = looped
    assert plain_losses == tracked_losses
    a, b = plain.state_dict(), model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert tracker.trajectory.steps == [0, 2, 3]
    assert model.training and all(m.training for m in model.modules())


def test_plain_loop_values_equal_compare(looped, tiny_dir, probe_txt):
    from repspace.compare import compare
    from tests.track.conftest import by_position

    *_, tracker, out = looped
    res = compare(
        str(tiny_dir),
        [str(out / "step-3")],
        probe=str(probe_txt),
        num_samples=None,
        batch_size=8,
        metrics=METRICS,
        embedding="none",
        sample_rows=0,
        progress=False,
    )
    pairs = by_position(tracker.trajectory.at(3), res.metrics[res.tuned_names[0]], res.layers)
    assert len(pairs) == 18
    for key, mine, theirs in pairs:
        assert mine == pytest.approx(theirs, abs=1e-6), key


def test_step_zero_is_the_base_and_ratios_are_tuned_over_base(looped):
    tracker = looped[4]
    for row in tracker.trajectory.at(0).values():
        assert row["linear_cka"] == pytest.approx(1.0) and row["relative_shift_mean"] == 0.0
        assert row["effective_rank_ratio"] == pytest.approx(1.0)
    for row in tracker.trajectory.at(3).values():
        assert (
            row["effective_rank_ratio"] == row["effective_rank_tuned"] / row["effective_rank_base"]
        )


def test_user_eval_flags_survive_and_a_failed_measurement_restores_them(tiny_dir, probe_txt):
    model = load_tiny(tiny_dir).train()
    model.bert.embeddings.eval()  # a part the user keeps frozen in eval mode
    tracker = Tracker(model, probe_txt, batch_size=16, num_samples=16, metrics=["linear_cka"])
    tracker.measure(model, 1)
    assert model.training and not model.bert.embeddings.training
    assert model.bert.encoder.training
    with pytest.raises(ValueError, match="step must be an integer"):
        tracker.measure(model, -1)
    tracker.batches.append({"input_ids": torch.zeros(2, 3, dtype=torch.long)})  # breaks the pairing
    with pytest.raises(ValueError):
        tracker.measure(model, 2)
    assert model.bert.encoder.training and not model.bert.embeddings.training
    assert torch.is_grad_enabled()


def test_a_bare_base_folder_pairs_with_the_head_models_backbone(tiny_dir, probe_txt, tmp_path):
    """A base saved as a bare encoder (AutoModel) and a tuned classifier: compared on the
    backbone, as compare does, layer names the backbone's."""
    from repspace.compare import compare
    from tests.track.conftest import by_position

    tuned = load_tiny(tiny_dir)
    tuned.bert.save_pretrained(tmp_path / "bare")
    word_tokenizer().save_pretrained(tmp_path / "bare")
    tracker = Tracker(str(tmp_path / "bare"), probe_txt, batch_size=8, metrics=METRICS)
    assert tracker.base_description.endswith("(loaded)")
    with torch.no_grad():
        for p in tuned.bert.encoder.parameters():
            p.mul_(1.05)
    values = tracker.measure(tuned, 1)
    assert list(values) == [f"encoder.layer.{i}" for i in range(3)]
    tuned.save_pretrained(tmp_path / "tuned")
    word_tokenizer().save_pretrained(tmp_path / "tuned")
    res = compare(
        str(tmp_path / "bare"),
        [str(tmp_path / "tuned")],
        probe=str(probe_txt),
        num_samples=None,
        batch_size=8,
        metrics=METRICS,
        embedding="none",
        sample_rows=0,
        progress=False,
    )
    assert res.layers == list(values)
    for key, mine, theirs in by_position(values, res.metrics[res.tuned_names[0]], res.layers):
        assert mine == pytest.approx(theirs, abs=1e-6), key


def test_prompt_learning_base_is_the_model_without_the_prompt(tiny_dir, probe_txt, tmp_path):
    """A prompt-tuned PEFT model: the base is its base model (no virtual tokens), exactly what
    compare loads as the base of the saved prompt."""
    import json

    from peft import PromptTuningConfig, get_peft_model

    from repspace.compare import compare
    from tests.track.conftest import by_position

    bare = load_tiny(tiny_dir).bert
    bare.save_pretrained(tmp_path / "bare")
    word_tokenizer().save_pretrained(tmp_path / "bare")
    torch.manual_seed(0)
    model = get_peft_model(
        bare, PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=4)
    )
    tracker = Tracker(
        model, probe_txt, batch_size=8, metrics=["linear_cka"], processor=word_tokenizer()
    )
    assert "prompt learning" in tracker.base_description
    values = tracker.measure(model, 0)  # the untrained prompt already moves the text tokens
    assert all(row["linear_cka"] < 1 for row in values.values())
    model.save_pretrained(tmp_path / "prompt")
    cfg = json.loads((tmp_path / "prompt" / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "bare")
    (tmp_path / "prompt" / "adapter_config.json").write_text(json.dumps(cfg))
    res = compare(
        str(tmp_path / "bare"),
        [str(tmp_path / "prompt")],
        probe=str(probe_txt),
        num_samples=None,
        batch_size=8,
        metrics=["linear_cka"],
        embedding="none",
        sample_rows=0,
        progress=False,
    )
    for key, mine, theirs in by_position(values, res.metrics[res.tuned_names[0]], res.layers):
        assert mine == pytest.approx(theirs, abs=1e-6), key


def test_a_list_of_texts_and_a_metric_subset(tiny_dir):
    model = load_tiny(tiny_dir)
    tracker = Tracker(
        model,
        SENTENCES[:12],
        metrics=["effective_rank_ratio", "linear_cka_debiased"],
        batch_size=5,
        processor=word_tokenizer(),
        layers=["bert.encoder.layer.2"],
    )
    values = tracker.measure(model, 0)
    assert list(values) == ["bert.encoder.layer.2"]
    assert set(values["bert.encoder.layer.2"]) == {"effective_rank_ratio", "linear_cka_debiased"}
    assert Tracker.scalars(values) == {
        "repspace/effective_rank_ratio/bert.encoder.layer.2": values["bert.encoder.layer.2"][
            "effective_rank_ratio"
        ],
        "repspace/linear_cka_debiased/bert.encoder.layer.2": values["bert.encoder.layer.2"][
            "linear_cka_debiased"
        ],
    }
    assert [len(b["input_ids"]) for b in tracker.batches] == [5, 5, 2]
    assert tracker.maybe_measure(model, 0) is None  # measured already (gradient accumulation)
    assert tracker.maybe_measure(model, 51) is None and tracker.maybe_measure(model, 50) == values
    assert tracker.trajectory.steps == [0, 50]
