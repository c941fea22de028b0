"""Issue 18, item 5 on the zoo's LMMs and text LMs: each parameter-efficient method lowers the
loss over 20 steps on a fixed batch, and `compare(base, RUN)` finds the towers it does not
touch -- the vision encoder and BLIP-2's Q-Former -- exactly unchanged (linear CKA 1 to
1e-9) and the language model it tunes moved (CKA < 1), on BLIP-2 (OPT and T5 language
models), InstructBLIP, Idefics3, LLaVA-NeXT, PaliGemma and Qwen2-VL.  Full fine-tuning moves the vision tower too.  (Every method x architecture also trains and reloads to identical losses in
test_train_zoo_archs.py; exact counts and identity at init are in tests/methods/test_zoo_sites.py.)"""

import pytest
import torch

from repspace.compare import compare
from repspace.training import TrainConfig, train

from tests.training.zoo_variants import saved_folders

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)
PEFTS = ("lora", "ia3", "adapter", "prefix", "prompt", "adalink")
OPTIONS = {"lora": {"r": 2}, "adapter": {"width": 2}, "prefix": {"num_virtual_tokens": 2},
           "prompt": {"num_virtual_tokens": 2}, "adalink": {"rank": 2}}
# the towers no PEFT here touches, by layer-name fragment
UNTOUCHED = {"blip2": ("vision_model", "qformer"), "idefics3": ("vision_model",),
             "llava_next": ("vision_tower",), "paligemma": ("vision_tower",),
             "qwen2_vl": ("visual.blocks",),  # AdaLink's image site is the merger after them
             "blip2_t5": ("vision_model", "qformer"), "instructblip": ("vision_model", "qformer")}
TUNED = {"blip2": "language_model", "idefics3": "text_model", "llava_next": "language_model",
         "paligemma": "language_model", "qwen2_vl": "language_model",
         "blip2_t5": "language_model", "instructblip": "language_model"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return saved_folders(tmp_path_factory, "tow")


def _train(base, tmp_path, method, steps=20):
    # 2 scenes' questions, batch 64: each step sees the same fixed batch, so losses compare
    lr = {"prompt": 5e-2, "prefix": 5e-2, "full": 1e-3}.get(method, 1e-2)
    cfg = TrainConfig(base=base, method=method, method_options=OPTIONS.get(method, {}), task="vqa",
                      n_train=2, n_eval=1, image_size=18, steps=steps, batch_size=64, lr=lr,
                      warmup_ratio=0.0, schedule="constant", seed=0, save_every=100,
                      max_new_tokens=2, output_dir=str(tmp_path / method))
    result = train(cfg, progress=False)
    assert len(result.losses) == steps and all(torch.isfinite(torch.tensor(result.losses)))
    return result


def _ckas(base, run):
    res = compare(base, [str(run)], num_samples=12, batch_size=12, sample_rows=12, progress=False,
                  distributed=False, embedding="none")
    name = res.tuned_names[0]
    return {layer: res.metrics[name][layer]["linear_cka"] for layer in res.layers}


@pytest.mark.parametrize("arch", list(UNTOUCHED))
@pytest.mark.parametrize("method", PEFTS)
def test_peft_lowers_the_loss_and_leaves_the_other_towers_exactly_unchanged(folder, tmp_path, arch, method):
    result = _train(folder(arch), tmp_path, method)
    assert min(result.losses[-3:]) < result.losses[0] - 1e-3, result.losses
    frozen = [n for n, p in result.model.named_parameters()
              if p.requires_grad and any(t in n for t in UNTOUCHED[arch])]
    assert not frozen, frozen  # the Q-Former / vision tower stay frozen for every PEFT
    ckas = _ckas(folder(arch), result.run_dir)
    still = {k: v for k, v in ckas.items() if any(t in k for t in UNTOUCHED[arch])}
    moved = {k: v for k, v in ckas.items() if TUNED[arch] in k}
    assert still and moved, list(ckas)
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in still.values()), still
    assert max(moved.values()) < 1 - 1e-6, moved


def test_full_fine_tuning_moves_the_vision_tower_too(folder, tmp_path):
    result = _train(folder("blip2"), tmp_path, "full", steps=3)
    ckas = _ckas(folder("blip2"), result.run_dir)
    vision = [v for k, v in ckas.items() if "vision_model" in k]
    assert vision and min(vision) < 1 - 1e-6, ckas


@pytest.mark.parametrize("arch", ["gemma2", "phi3"])
@pytest.mark.parametrize("method", PEFTS)
def test_peft_lowers_the_loss_on_text_lms(folder, tmp_path, arch, method):
    result = _train(folder(arch), tmp_path, method)
    assert min(result.losses[-3:]) < result.losses[0] - 1e-3, result.losses
