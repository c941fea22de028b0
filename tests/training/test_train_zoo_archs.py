"""Issue 18: `repspace train` on the compatibility zoo's architectures (tests/compat/zoo.py:
tiny real classes saved with real tokenizer / processor classes): every method on every
architecture trains, its run folder reloads to identical outputs, and -- where the model
generates -- the held-out evaluation decodes with and without the KV cache and they agree
(``evaluate_model`` raises ``CachedGenerationMismatch`` otherwise, so a finished run is the
check).  Full fine-tuning must also lower the loss on a fixed batch."""

import json

import pytest
import torch

from repspace.methods import available_methods, count_parameters
from repspace.training import TrainConfig, load_run, train

from tests.training.zoo_variants import saved_folders

# zoo name -> task trained (captioning for one LMM so both recipes run; VQA elsewhere)
ARCHS = {
    "gemma2": "vqa",
    "phi3": "vqa",
    "t5": "vqa",
    "roberta": "vqa",
    "bert": "vqa",
    "blip2": "captioning",
    "paligemma": "vqa",
    "idefics3": "vqa",
    "llava_next": "vqa",
    "blip2_t5": "vqa",
    "instructblip": "captioning",
    "qwen2_vl": "vqa",
}
KIND = {
    "gemma2": "causal-lm",
    "phi3": "causal-lm",
    "t5": "text-to-text",
    "roberta": "encoder-classification",
    "bert": "encoder-classification",
    "blip2": "blip-2-image-text-to-text",
    "paligemma": "paligemma-image-text-to-text",
    "idefics3": "idefics3-image-text-to-text",
    "llava_next": "llava_next-image-text-to-text",
    "blip2_t5": "blip-2-image-text-to-text",
    "instructblip": "instructblip-image-text-to-text",
    "qwen2_vl": "qwen2_vl-image-text-to-text",
}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SMALL = {"r": 2, "width": 2, "num_virtual_tokens": 2, "rank": 2}


@pytest.fixture(scope="module")
def zoo_base(tmp_path_factory):
    return saved_folders(tmp_path_factory, "zoo")


def _options(method: str) -> dict:
    from repspace.methods import get_method
    import dataclasses

    fields = {f.name for f in dataclasses.fields(get_method(method).config_class)}
    return {k: v for k, v in SMALL.items() if k in fields}


def _config(base, tmp_path, arch, method, **kw):
    args = dict(
        base=base,
        method=method,
        method_options=_options(method),
        task=ARCHS[arch],
        n_train=1,
        n_eval=1,
        image_size=18,
        steps=2,
        batch_size=8,
        lr=1e-3,
        warmup_ratio=0.0,
        seed=0,
        save_every=10,
        max_new_tokens=2,
        output_dir=str(tmp_path / f"{arch}-{method}"),
    )
    args.update(kw)
    return TrainConfig(**args)


def _batch(result):
    from repspace.training.data import load_records
    from repspace.training.tasks import make_task

    task = make_task(result.model, load_run(result.run_dir).processor, result.config.task)
    task.load_state(result.manifest["task_state"])
    enc = task.encode(load_records(result.config, "train"), True)
    return task, enc.batch(torch.arange(min(enc.n, 3)))


def _loss(task, model, batch):
    model.eval()
    with torch.no_grad():
        return task.loss(model, batch)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("method", available_methods() + ["adapter-parallel"])
def test_every_method_trains_and_reloads(zoo_base, tmp_path, arch, method):
    extra = {}
    if method == "adapter-parallel":
        method, extra = (
            "adapter",
            {"method_options": {**_options("adapter"), "placement": "parallel"}},
        )
    result = train(_config(zoo_base(arch), tmp_path, arch, method, **extra), progress=False)
    assert result.finished and len(result.losses) == 2
    assert all(torch.isfinite(torch.tensor(result.losses)))
    manifest = json.loads((result.run_dir / "repspace_manifest.json").read_text())
    assert manifest["task_kind"] == KIND[arch]
    assert 0 < result.params.trainable <= result.params.total
    if method != "full" and manifest["stage_steps"] == [2]:
        assert result.params.trainable < result.params.total
        assert result.params == count_parameters(result.model)
    task, batch = _batch(result)
    reloaded = load_run(result.run_dir).model
    assert torch.equal(_loss(task, result.model, batch), _loss(task, reloaded, batch))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_full_fine_tuning_lowers_the_loss(zoo_base, tmp_path, arch):
    # batch_size > items: every step sees the whole (fixed) training set, so the losses compare
    cfg = _config(zoo_base(arch), tmp_path, arch, "full", steps=3, batch_size=64)
    losses = train(cfg, progress=False).losses
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 1e-3, losses


def test_qwen2_vl_without_an_image_processor_is_refused_in_one_line(zoo_base):
    """Qwen2-VL trains through repspace's ImageOnlyProcessor when torchvision is missing (it is
    in ARCHS above); a checkpoint whose processor has no image half at all is refused."""
    from repspace.checkpoints import load_checkpoint
    from repspace.training.tasks import make_task

    base = load_checkpoint(zoo_base("qwen2_vl"))
    with pytest.raises(ValueError, match="torchvision") as exc:
        make_task(base.model, base.processor.tokenizer, "vqa")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "arch,method,options",
    [
        ("t5", "adapter", {"placement": "parallel", "train_head": True}),
        ("paligemma", "lora", {"train_head": True}),
        ("gemma2", "pt_adapter", {"train_head": True}),
    ],
    ids=["t5-parallel-adapter+head", "paligemma-lora+head", "gemma2-pt_adapter+head"],
)
def test_study_options_train_save_and_reload(zoo_base, tmp_path, arch, method, options):
    cfg = _config(
        zoo_base(arch), tmp_path, arch, method, method_options={**_options(method), **options}
    )
    result = train(cfg, progress=False)
    trained = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert any("lm_head" in n or "shared" in n or "embed_tokens" in n for n in trained)
    assert result.manifest["method_config"]["train_head"] is True
    task, batch = _batch(result)
    assert torch.equal(
        _loss(task, result.model, batch), _loss(task, load_run(result.run_dir).model, batch)
    )
