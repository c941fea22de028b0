"""Tiny models built from transformers configs (hidden 32, 2 layers) and their inputs.
The configs live in tests/tiny_models.py, shared with tests/methods."""

import copy
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
warnings.filterwarnings("ignore", category=FutureWarning)

# IMAGE_TOKEN is re-exported for test_multimodal (`from .conftest import IMAGE_TOKEN`).
from tests.tiny_models import (  # noqa: E402, F401  (after the skip; re-export)
    IMAGE_TOKEN,
    VOCAB,
    bert_config,
    blip_config,
    build,
    gpt2_config,
    llava_config,
    quiet_library_deprecations,
    vit_config,
)


@pytest.fixture(scope="session")
def _bert():
    return build(transformers.BertModel, bert_config())


@pytest.fixture(scope="session")
def _gpt2():
    return build(transformers.GPT2LMHeadModel, gpt2_config())


@pytest.fixture(scope="session")
def _vit():
    return build(transformers.ViTModel, vit_config())


@pytest.fixture(scope="session")
def _blip_caption():
    return build(transformers.BlipForConditionalGeneration, blip_config())


@pytest.fixture(scope="session")
def _blip_vqa():
    return build(transformers.BlipForQuestionAnswering, blip_config())


@pytest.fixture(scope="session")
def _llava():
    return build(transformers.LlavaForConditionalGeneration, llava_config())


# Function-scoped copies: PEFT wraps models in place.
@pytest.fixture
def bert(_bert):
    return copy.deepcopy(_bert)


@pytest.fixture
def gpt2(_gpt2):
    return copy.deepcopy(_gpt2)


@pytest.fixture
def vit(_vit):
    return copy.deepcopy(_vit)


@pytest.fixture
def blip_caption(_blip_caption):
    return copy.deepcopy(_blip_caption)


@pytest.fixture
def blip_vqa(_blip_vqa):
    return copy.deepcopy(_blip_vqa)


@pytest.fixture
def llava(_llava):
    return copy.deepcopy(_llava)


def make_text(n=6, t=7, seed=0, pad="right"):
    """input_ids (n, t) with ragged lengths >= 2 and the matching attention mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, t), generator=g)
    lengths = torch.randint(2, t + 1, (n,), generator=g)
    lengths[0] = t
    pos = torch.arange(t)[None, :]
    mask = (pos < lengths[:, None]) if pad == "right" else (pos >= t - lengths[:, None])
    ids = ids.masked_fill(~mask, 0)
    return {"input_ids": ids, "attention_mask": mask.long()}


def make_pixels(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g)


@pytest.fixture
def text():
    return make_text()


@pytest.fixture
def pixels():
    return make_pixels()


def nonzero_lora(model, seed=1):
    """Give every LoRA B matrix non-zero weights (PEFT initialises B to zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


@pytest.fixture(autouse=True)
def _quiet_library_deprecations():
    with quiet_library_deprecations():
        yield
