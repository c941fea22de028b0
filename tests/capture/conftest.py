"""Tiny models built from transformers configs (hidden 32, 2 layers) and their inputs."""
import copy
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=FutureWarning)

VOCAB = 64
_TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=37, max_position_embeddings=64)
_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=37, image_size=16, patch_size=8)


def _build(cls, config):
    torch.manual_seed(0)
    return cls(config).eval()


@pytest.fixture(scope="session")
def _bert():
    return _build(transformers.BertModel, transformers.BertConfig(**_TEXT))


@pytest.fixture(scope="session")
def _gpt2():
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)
    return _build(transformers.GPT2LMHeadModel, cfg)


@pytest.fixture(scope="session")
def _vit():
    return _build(transformers.ViTModel, transformers.ViTConfig(**_VISION))


def _blip_config():
    return transformers.BlipConfig(text_config=dict(_TEXT, bos_token_id=1, sep_token_id=2,
                                                    pad_token_id=0),
                                   # BLIP's default vision init range is 1e-10: states
                                   # that small hide any difference; use BERT's 0.02.
                                   vision_config=dict(_VISION, initializer_range=0.02),
                                   projection_dim=16)


@pytest.fixture(scope="session")
def _blip_caption():
    return _build(transformers.BlipForConditionalGeneration, _blip_config())


@pytest.fixture(scope="session")
def _blip_vqa():
    return _build(transformers.BlipForQuestionAnswering, _blip_config())


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
    # peft 0.21 calls a transformers-5 deprecated API; not ours to fix.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        yield


IMAGE_TOKEN = VOCAB - 1


@pytest.fixture(scope="session")
def _llava():
    cfg = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
            image_size=16, patch_size=8, projection_dim=16),
        text_config=transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64),
        image_token_index=IMAGE_TOKEN, vision_feature_layer=-1,
        vision_feature_select_strategy="default")  # drops CLS: 4 image tokens per image
    return _build(transformers.LlavaForConditionalGeneration, cfg)


@pytest.fixture
def llava(_llava):
    return copy.deepcopy(_llava)
