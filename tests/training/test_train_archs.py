"""End to end on tiny checkpoints: every architecture x task with full fine-tuning, and every
registered method on BLIP (the main case): the loss falls, the parameter count is the
method's, the run folder is complete and reloads to identical outputs."""

import json

import pytest
import torch

from repspace.checkpoints import MANIFEST_NAME, load_checkpoint
from repspace.methods import available_methods, count_parameters, get_method
from repspace.training import load_run, train
from repspace.training.runs import MANIFEST_FIELDS

from conftest import small_config

CASES = [
    ("blip", "captioning"),
    ("blip", "vqa"),
    ("blip_vqa", "vqa"),
    ("llava", "vqa"),
    ("llava", "captioning"),
    ("gpt2", "vqa"),
    ("bert", "vqa"),
]


def _same_outputs(a, b, batch):
    a.eval(), b.eval()
    with torch.no_grad():
        la, lb = a(**batch), b(**batch)
    if getattr(la, "logits", None) is None:  # BlipForQuestionAnswering returns the loss only
        return torch.equal(la.loss, lb.loss) and torch.equal(la.image_embeds, lb.image_embeds)
    return torch.equal(la.logits, lb.logits) and torch.equal(la.loss, lb.loss)


def _batch(result):
    """A training batch of the run (same task glue as the trainer)."""
    from repspace.training.data import load_records
    from repspace.training.tasks import make_task

    ckpt = load_run(result.run_dir)
    task = make_task(ckpt.model, ckpt.processor, result.config.task)
    task.load_state(result.manifest["task_state"])
    enc = task.encode(load_records(result.config, "train"), True)
    return enc.batch(torch.arange(min(enc.n, 4)))


def _check_run(result, method):
    run = result.run_dir
    for f in (MANIFEST_NAME, "weights.safetensors", "train_log.jsonl", "train_config.json"):
        assert (run / f).is_file(), f
    assert not (run / "state").exists()
    assert any(p.name.startswith("tokenizer") for p in run.iterdir())
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    assert set(MANIFEST_FIELDS) <= set(manifest)
    assert manifest["schema"] == "repspace.run" and manifest["method"] == method
    assert manifest["weights_format"] == (
        "repspace.full" if method == "full" else "repspace.trainable"
    )
    assert manifest["trainable_params"] == result.params.trainable
    assert len(manifest["base_sha256"]) == 64
    keys = {"bleu_4", "cider_d"} if result.config.task == "captioning" else {"vqa_accuracy"}
    assert keys <= set(result.scores)
    return manifest


@pytest.mark.parametrize("arch,task", CASES, ids=[f"{a}-{t}" for a, t in CASES])
def test_full_finetune_every_architecture(tiny_base, tmp_path, arch, task):
    cfg = small_config(tiny_base(arch), tmp_path, task=task, steps=5)
    started = []
    result = train(cfg, progress=False, on_start=started.append)
    assert result.finished and len(result.losses) == 5
    assert result.losses[-1] < result.losses[0] - 0.01, result.losses
    assert result.params == count_parameters(result.model) == started[0]
    _check_run(result, "full")
    batch = _batch(result)
    assert _same_outputs(result.model, load_run(result.run_dir).model, batch)
    assert _same_outputs(result.model, load_checkpoint(str(result.run_dir)).model, batch)


def _methods():
    return [m for m in available_methods() if m != "full"]


@pytest.mark.parametrize("method", _methods())
def test_every_method_on_blip(tiny_base, tmp_path, method):
    cfg = small_config(tiny_base("blip"), tmp_path, method=method, steps=3, lr=5e-3)
    try:
        result = train(cfg, progress=False)
    except ValueError as exc:
        pytest.skip(f"{method} does not apply to tiny BLIP: {exc}")
    assert result.finished
    if get_method(method).config_class.num_stages == 1:
        assert result.params == count_parameters(result.model)
        assert result.params.trainable < result.params.total
    manifest = _check_run(result, method)
    assert manifest["method_config"]["method"] == method
    reloaded = load_checkpoint(str(result.run_dir))
    assert reloaded.kind == "repspace" and reloaded.manifest["method"] == method
    assert _same_outputs(result.model, reloaded.model, _batch(result))


def test_bert_head_is_trainable_and_saved_under_peft(tiny_base, tmp_path):
    if "lora" not in available_methods():
        pytest.skip("lora is not registered yet")
    result = train(
        small_config(tiny_base("bert"), tmp_path, method="lora", steps=2), progress=False
    )
    names = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert any("classifier" in n for n in names)
    from safetensors.torch import load_file

    saved = load_file(str(result.run_dir / "weights.safetensors"))
    assert set(saved) == set(names)
    assert result.manifest["task_state"]["answers"]
    assert _same_outputs(result.model, load_run(result.run_dir).model, _batch(result))


def test_multi_stage_methods_switch_trainable_set(tiny_base, tmp_path):
    multi = [m for m in available_methods() if get_method(m).config_class.num_stages > 1]
    if not multi:
        pytest.skip("no multi-stage (PT-PEFT) method registered yet")
    for method in multi:
        cfg = small_config(
            tiny_base("blip"), tmp_path, method=method, steps=4, output_dir=str(tmp_path / method)
        )
        started = []
        try:
            result = train(cfg, progress=False, on_start=started.append)
        except ValueError as exc:
            pytest.skip(f"{method} does not apply to tiny BLIP: {exc}")
        stages = [
            json.loads(l).get("stage")
            for l in (result.run_dir / "train_log.jsonl").read_text().splitlines()
        ]
        assert {1, 2} <= set(stages)
        assert result.params.trainable != started[0].trainable
        assert _same_outputs(result.model, load_run(result.run_dir).model, _batch(result))
