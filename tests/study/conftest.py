"""Stub seams for study tests: a fake trainer and a fake compare that are fast and
deterministic, injected through ``run_study(train_fn=..., compare_fn=...)``."""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from repspace.methods import ParamCount
from repspace.report.result import CheckpointInfo, CompareResult

LAYERS = ["vision.layers.0", "vision.layers.1", "text.layer.0"]


def _u(text: str) -> float:
    """A deterministic number in [0, 1) from ``text``."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32


class StubTrainer:
    """Records every call; can raise on the call number ``fail_at`` (1-based)."""

    def __init__(self, fail_at=None, exc=KeyboardInterrupt):
        self.calls = []
        self.fail_at, self.exc = fail_at, exc

    def __call__(self, cfg, progress=True):
        assert progress is False  # the study shows one bar; inner bars are quiet
        self.calls.append(cfg)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise self.exc("stop here")
        run = Path(cfg.output_dir)
        run.mkdir(parents=True, exist_ok=True)
        (run / "repspace_manifest.json").write_text(
            json.dumps({"method": cfg.method, "config": cfg.to_dict()})
        )
        ident = f"{cfg.method}{cfg.method_options}{cfg.data_fraction}{cfg.seed}"
        return SimpleNamespace(
            run_dir=run,
            manifest={},
            params=ParamCount(10 + len(ident), 1000),
            scores={"vqa_accuracy": 0.3 + 0.5 * _u(ident), "per_type": {"color": _u(ident + "c")}},
        )


class StubCompare:
    def __init__(self):
        self.calls = []

    def __call__(self, base, tuned, **kw):
        self.calls.append((base, list(tuned), kw))
        assert kw["progress"] is False
        name = Path(tuned[0]).name
        same = tuned[0] == base
        metrics = {}
        for i, layer in enumerate(LAYERS):
            move = 0.0 if same else _u(name + layer) * 0.3
            metrics[layer] = {
                "linear_cka": 1.0 - move,
                "linear_cka_debiased": 1.0 - 1.1 * move,
                "effective_rank_base": 10.0 + i,
                "effective_rank_tuned": (10.0 + i) * (1 - move / 2),
                "frechet_distance": move * 5,
            }
        info = CheckpointInfo(name=name, spec=tuned[0], kind="stub")
        return CompareResult(
            CheckpointInfo(name="base", spec=base, kind="stub"),
            [info],
            list(LAYERS),
            {name: metrics},
        )


@pytest.fixture
def trainer():
    return StubTrainer()


@pytest.fixture
def comparer():
    return StubCompare()


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """A tiny BLIP (2 + 2 blocks of width 32) saved with its processor: real training and
    compare in seconds."""
    import torch
    import transformers

    from repspace.models import build_processor, tiny_blip_config

    transformers.logging.set_verbosity_error()
    folder = tmp_path_factory.mktemp("base") / "tiny-blip"
    torch.manual_seed(0)
    cfg = tiny_blip_config(
        image_size=32,
        patch_size=8,
        vision_hidden=32,
        vision_layers=2,
        text_hidden=32,
        text_layers=2,
        num_heads=2,
    )
    transformers.BlipForConditionalGeneration(cfg).eval().save_pretrained(folder)
    build_processor(32).save_pretrained(folder)
    return folder
