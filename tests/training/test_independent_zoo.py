"""Issue 31: training on checkpoints built apart from the test zoo (tests/training/independent_zoo.py).

Every architecture of the compatibility table x LoRA, prefix and AdaLink: 2 steps from a
``save_pretrained`` folder, then ``compare(base, run)`` on the built-in probe; CLIP, SigLIP
and ViT are refused in one line.  The cases that failed on the main branch before issue 31:
T5 shaped like T5 v1.1 / Flan-T5 (``num_heads * d_kv != d_model``; a non-contiguous labels
tensor reached T5's ``labels.view(-1)``) and LLaVA-NeXT, Idefics3, Qwen2-VL saved without a
chat template ("found 0 image tokens"); PaliGemma without one is here too.

By default a representative subset runs (every failure class, each of the three methods, one
refusal: 9 cells, ~30 s); ``REPSPACE_FULL_SWEEP=1`` runs every case x LoRA, prefix, AdaLink
and every other registered method too (docs/methods.md, "Independently built checkpoints").
"""

import math
import os

import pytest
import torch

from repspace.compare import compare
from repspace.training import TrainConfig, train

from tests.training.independent_zoo import CASES, save_case

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
FULL = os.environ.get("REPSPACE_FULL_SWEEP", "") not in ("", "0")
# the three; the full sweep adds every other registered method
METHODS = ("lora", "prefix", "adalink")
SMALL = {"r": 2, "width": 2, "num_virtual_tokens": 2, "rank": 2}


def _options(method: str) -> dict:
    import dataclasses

    from repspace.methods import get_method

    fields = {f.name for f in dataclasses.fields(get_method(method).config_class)}
    return {k: v for k, v in SMALL.items() if k in fields}


def _methods() -> list[str]:
    from repspace.methods import available_methods

    return list(METHODS) + ([m for m in available_methods() if m not in METHODS] if FULL else [])


# what runs without REPSPACE_FULL_SWEEP: each failure class of issue 31 and each method
DEFAULT = {
    ("t5_v11", "lora"),
    ("flan_t5", "prefix"),
    ("llava_next", "lora"),
    ("idefics3", "adalink"),
    ("qwen2_vl", "lora"),
    ("paligemma", "prefix"),
    ("qwen2_vl_tokenizer_template", "adalink"),
    ("gemma2", "prefix"),
    ("vit", "lora"),
}


def _cells():
    for case in CASES:
        for method in _methods():
            marks = (
                ()
                if FULL or (case, method) in DEFAULT
                else (pytest.mark.skip(reason="the full sweep runs with REPSPACE_FULL_SWEEP=1"),)
            )
            yield pytest.param(case, method, id=f"{case}-{method}", marks=marks)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    cache: dict = {}

    def get(case: str) -> str:
        if case not in cache:
            cache[case] = str(save_case(case, tmp_path_factory.mktemp(f"ind-{case}")))
        return cache[case]

    return get


def config(base: str, out, task: str, method: str, **kw) -> TrainConfig:
    # batch 2 of a dozen questions: batches shorter than the longest row, as in real runs
    args = dict(
        base=base,
        method=method,
        method_options=_options(method),
        task=task,
        n_train=2,
        n_eval=1,
        image_size=18,
        steps=2,
        batch_size=2,
        lr=1e-3,
        warmup_ratio=0.0,
        seed=0,
        save_every=10,
        max_new_tokens=2,
        output_dir=str(out),
    )
    args.update(kw)
    return TrainConfig(**args)


@pytest.mark.parametrize("case,method", list(_cells()))
def test_trains_then_compares_or_is_refused_in_one_line(folder, tmp_path, case, method):
    task = CASES[case][2]
    base = folder(case)
    if task is None:  # CLIP, SigLIP, ViT: no generative or classification recipe
        with pytest.raises(ValueError) as exc:
            train(config(base, tmp_path / "run", "vqa", method), progress=False)
        assert "\n" not in str(exc.value) and "recipe" in str(exc.value)
        return
    result = train(config(base, tmp_path / "run", task, method), progress=False)
    assert result.finished and len(result.losses) == 2
    assert all(torch.isfinite(torch.tensor(result.losses))), result.losses
    res = compare(
        base,
        [str(result.run_dir)],
        num_samples=8,
        batch_size=8,
        sample_rows=8,
        progress=False,
        distributed=False,
        embedding="none",
    )
    name = res.tuned_names[0]
    ckas = [res.metrics[name][layer]["linear_cka"] for layer in res.layers]
    assert ckas and not any(math.isnan(c) for c in ckas), ckas  # compared


def test_every_architecture_of_the_compatibility_table_has_a_case():
    from tests.compat.zoo import ARCHITECTURES

    assert {arch for arch, _, _ in CASES.values()} == set(ARCHITECTURES)
