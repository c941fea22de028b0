"""Issue 31 items 1-2 and two issue-27 defects of `repspace train`.

- Every batch a training recipe builds is contiguous (T5 v1.1 / Flan-T5 shaped checkpoints
  failed in T5's ``labels.view(-1)`` on a trimmed, non-contiguous labels tensor).
- A batch repspace built wrong is repspace's error, naming the field, exit 1 with "please
  report" and ``--debug``; never "the model's own code failed" -- the loop checks each batch
  before the forward.
- The no-template VLM prompt is the probe's (image token when there is no chat template; the
  tokenizer's template when only the tokenizer config holds one).
- Ctrl-C says which step was saved and prints the exact command that resumes; ``pt_lora``
  prints the count the manifest records, per stage.
"""

import json
import shlex

import pytest
import torch

from repspace.cli_errors import classify
from repspace.probe.batch_check import InputBuildError, check_batch
from repspace.training import TrainConfig

from tests.training import independent_zoo as iz

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    cache: dict = {}

    def get(case: str) -> str:
        if case not in cache:
            cache[case] = str(iz.save_case(case, tmp_path_factory.mktemp(f"blame-{case}")))
        return cache[case]

    return get


def _t5_task(base: str):
    from repspace.checkpoints import load_checkpoint
    from repspace.training.data import load_records
    from repspace.training.tasks import make_task

    ck = load_checkpoint(base)
    task = make_task(ck.model, ck.processor, "vqa")
    cfg = TrainConfig(base=base, method="lora", task="vqa", n_train=2, n_eval=1, image_size=18)
    return ck.model, task, task.encode(load_records(cfg, "train"), True)


@pytest.mark.parametrize("case", ["t5_v11", "flan_t5"])
def test_t5_batches_are_contiguous_and_the_model_takes_them(folder, case):
    model, task, enc = _t5_task(folder(case))
    assert model.config.num_heads * model.config.d_kv != model.config.d_model
    lengths = enc.tensors["label_mask"].sum(1)
    short = int(lengths.argmin())
    batch = enc.batch(torch.tensor([short, short]))  # trimmed below the longest answer
    assert batch["labels"].shape[1] < enc.tensors["labels"].shape[1]
    assert all(v.is_contiguous() for v in batch.values())
    task.check(model, batch)
    assert torch.isfinite(task.loss(model, batch))


def test_a_non_contiguous_field_is_repspaces_error_not_the_models():
    model = iz.t5_v11()[0]
    ids = torch.ones(2, 5, dtype=torch.long)
    labels = torch.ones(2, 8, dtype=torch.long)[:, :4]
    with pytest.raises(InputBuildError) as exc:
        check_batch(
            model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
        )
    message, code = classify(exc.value)
    assert code == 1 and "'labels'" in message and "not contiguous" in message
    assert "please report" in message and "--debug" in message
    assert "model's own code" not in message


@pytest.mark.parametrize(
    "batch,field",
    [
        (
            {"input_ids": torch.ones(2, 3), "attention_mask": torch.ones(2, 3, dtype=torch.long)},
            "input_ids",
        ),
        (
            {
                "input_ids": torch.ones(2, 3, dtype=torch.long),
                "attention_mask": torch.ones(2, 4, dtype=torch.long),
            },
            "attention_mask",
        ),
        (
            {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.full((2, 3), -5)},
            "labels",
        ),
    ],
    ids=["float-ids", "mask-shape", "negative-label"],
)
def test_each_check_names_its_field(batch, field):
    with pytest.raises(InputBuildError) as exc:
        check_batch(iz.gpt2()[0], batch)
    assert exc.value.field == field and f"'{field}'" in str(exc.value)


def test_ids_beyond_the_embeddings_blame_the_checkpoints_tokenizer():
    model = iz.gpt2()[0]
    vocab = model.get_input_embeddings().num_embeddings
    with pytest.raises(ValueError, match=f"token id {vocab}.*{vocab} rows") as exc:
        check_batch(model, {"input_ids": torch.tensor([[1, vocab]])})
    assert not isinstance(exc.value, InputBuildError) and "\n" not in str(exc.value)


def test_images_without_image_tokens_are_caught_before_the_forward():
    model = iz.llava_next()[0]
    ids = torch.tensor([[1, 5, 6]])
    with pytest.raises(InputBuildError, match="no image token") as exc:
        check_batch(model, {"input_ids": ids, "pixel_values": torch.zeros(1, 3, 3, 24, 24)})
    assert exc.value.field == "input_ids"


def test_the_loop_checks_each_batch_before_the_forward(tiny_base, tmp_path, monkeypatch, capsys):
    """A recipe that hands the model a bad batch fails in repspace's check, naming the field,
    exit 1 with "please report" -- not inside the model's code."""
    from repspace.cli import main
    from repspace.training.tasks import base

    original = base.Encoded.batch

    def strided(self, idx):
        out = original(self, idx)
        out["labels"] = torch.cat([out["labels"], out["labels"]], 1)[:, ::2]  # same values, strided
        return out

    monkeypatch.setattr(base.Encoded, "batch", strided)
    code = main(
        [
            "train",
            "--method",
            "lora",
            "--task",
            "vqa",
            "--base",
            tiny_base("gpt2"),
            "--steps",
            "1",
            "--n-train",
            "2",
            "--n-eval",
            "2",
            "--image-size",
            "18",
            "--batch-size",
            "2",
            "-o",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "'labels'" in err and "please report" in err
    assert "model's own code" not in err


@pytest.mark.parametrize(
    "case,mode",
    [
        ("llava_next", "token"),
        ("idefics3", "token"),
        ("qwen2_vl", "token"),
        ("qwen2_vl_tokenizer_template", "chat"),
        ("paligemma", "plain"),
    ],
)
def test_training_prompts_follow_the_probes_rule(folder, case, mode):
    from repspace.checkpoints import load_checkpoint
    from repspace.training.data import load_records
    from repspace.training.tasks import make_task

    base = folder(case)
    ck = load_checkpoint(base)
    task = make_task(ck.model, ck.processor, "vqa")
    cfg = TrainConfig(base=base, method="lora", task="vqa", n_train=1, n_eval=1, image_size=18)
    enc = task.encode(load_records(cfg, "train")[:2], True)
    assert task.mode == mode
    batch = enc.batch(torch.arange(enc.n))
    task.check(ck.model, batch)  # image tokens in every row with its image
    assert torch.isfinite(task.loss(ck.model, batch))


def test_ctrl_c_names_the_saved_step_and_the_command_that_resumes(
    tiny_base, tmp_path, monkeypatch, capsys
):
    from repspace.cli import main
    from repspace.training import trainer

    out = tmp_path / "run"
    log = trainer.Loop._log

    def interrupt_after_step_2(self, record):
        log(self, record)
        if record.get("step") == 2 and "loss" in record:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Loop, "_log", interrupt_after_step_2)
    argv = [
        "train",
        "--method",
        "lora",
        "--task",
        "vqa",
        "--base",
        tiny_base("gpt2"),
        "--steps",
        "4",
        "--n-train",
        "2",
        "--n-eval",
        "2",
        "--image-size",
        "18",
        "--batch-size",
        "2",
        "--option",
        "r=2",
        "--overwrite",
        "-o",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"state saved at step 2 of 4 in {out / 'state'}" in err
    command = err.split("resume with:", 1)[1].strip().splitlines()[0]
    words = shlex.split(command)
    assert words[:2] == ["repspace", "train"] and "--resume" in words and "--overwrite" not in words
    assert "r=2" in words and str(out) in words
    monkeypatch.setattr(trainer.Loop, "_log", log)
    assert main(words[1:]) == 0
    assert "resumed from step 2" in capsys.readouterr().out


def test_pt_lora_prints_the_count_the_manifest_records(tiny_base, tmp_path, capsys):
    from repspace.cli import main

    out = tmp_path / "pt"
    assert (
        main(
            [
                "train",
                "--method",
                "pt_lora",
                "--task",
                "vqa",
                "--base",
                tiny_base("gpt2"),
                "--steps",
                "2",
                "--n-train",
                "2",
                "--n-eval",
                "2",
                "--image-size",
                "18",
                "--batch-size",
                "8",
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    manifest = json.loads((out / "repspace_manifest.json").read_text())
    stage1, stage2 = manifest["stage_trainable_params"]
    assert stage1 < stage2 <= manifest["trainable_params"]
    assert f"trainable parameters in stage 1 of 2: {stage1:,} trainable" in text
    assert f"over all 2 stages: {manifest['trainable_params']:,} trainable" in text
    assert f"stage 1: {stage1:,}; stage 2: {stage2:,}" in text


def test_a_failure_inside_the_model_after_the_checks_is_the_models(tmp_path):
    """T5 with a decoder deeper than its encoder: repspace's inputs pass every check, and
    transformers 5.24's own generate fails (its cache is sized by the encoder's depth) --
    then, and only then, "the model's own code failed" is the honest message."""
    from repspace.training import train

    folder = tmp_path / "deep"
    model, tok = iz.t5_deep_decoder()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = TrainConfig(
        base=str(folder),
        method="lora",
        method_options={"r": 2},
        task="vqa",
        n_train=2,
        n_eval=1,
        image_size=18,
        steps=1,
        batch_size=2,
        max_new_tokens=2,
        output_dir=str(tmp_path / "run"),
    )
    with pytest.raises(Exception) as exc:  # noqa: B017 - whatever transformers raises
        train(cfg, progress=False)
    message, code = classify(exc.value)
    assert code == 1 and message.startswith("the model's own code failed in transformers"), message
