"""TRL's SFTTrainer (a transformers.Trainer) with the callback: logged, and the last values
equal `repspace compare` of the checkpoint it saved -- although SFTConfig trains in bf16
mixed precision by default (accelerate's autocast wrapper around the forward, which a
measurement takes off: repspace.track.guard)."""

import pytest
import torch

from repspace.track import DistortionCallback
from tests.compare.conftest import SENTENCES, word_tokenizer
from tests.track.conftest import by_position, tracked

trl = pytest.importorskip("trl", reason="trl is not installed (pip install -e '.[test]')")


def test_sft_trainer(tmp_path, probe_txt):
    import transformers
    from datasets import Dataset
    from transformers import GPT2LMHeadModel

    from repspace.compare import compare
    from tests.tiny_models import gpt2_config

    transformers.logging.set_verbosity_error()
    tok = word_tokenizer()
    tok.eos_token = "[SEP]"
    cfg = gpt2_config()
    cfg.eos_token_id, cfg.bos_token_id, cfg.pad_token_id = (
        tok.eos_token_id,
        tok.cls_token_id,
        tok.pad_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    model = GPT2LMHeadModel.from_pretrained(tmp_path / "base", local_files_only=True)
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=8,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        disable_tqdm=True,
        max_length=32,
        save_strategy="steps",
        save_steps=2,
        learning_rate=1e-2,
    )
    cb = DistortionCallback(
        probe=probe_txt,
        every_n_steps=1,
        batch_size=8,
        metrics=["linear_cka", "relative_shift_mean"],
        figures=False,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        processing_class=tok,
        callbacks=[cb],
        train_dataset=Dataset.from_dict({"text": SENTENCES}),
    )
    trainer.train()
    assert cb.trainer is trainer and sorted(tracked(trainer)) == [0, 1, 2]
    assert (tmp_path / "out" / "repspace-track" / "trajectory.json").is_file()
    res = compare(
        str(tmp_path / "base"),
        [str(tmp_path / "out" / "checkpoint-2")],
        probe=str(probe_txt),
        num_samples=None,
        batch_size=8,
        metrics=["linear_cka", "relative_shift_mean"],
        embedding="none",
        sample_rows=0,
        progress=False,
    )
    pairs = by_position(cb.trajectory.at(2), res.metrics[res.tuned_names[0]], res.layers)
    assert args.bf16  # mixed precision: the measurement runs the unwrapped float32 forward
    assert len(pairs) == 6 and min(p[1] for p in pairs if p[0].endswith("|linear_cka")) < 1
    for key, mine, theirs in pairs:
        assert mine == pytest.approx(theirs, abs=1e-6), key
