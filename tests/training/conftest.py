"""Tiny checkpoints of every architecture the trainer supports, saved once per session to
folders (model + processor), as a user's base checkpoint would be: BLIP captioning and VQA,
LLaVA, GPT-2, BERT; hidden 32, 2 layers, 16 px images, the shapes-world tokenizer."""

import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

_TEXT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    max_position_embeddings=96,
)
_VISION = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    image_size=16,
    patch_size=8,
)


def _tok():
    from repspace.data import build_tokenizer

    return build_tokenizer()


def _blip_processor(tok):
    return transformers.BlipProcessor(
        image_processor=transformers.BlipImageProcessor(size={"height": 16, "width": 16}),
        tokenizer=tok,
    )


def _build(arch: str):
    from repspace.data import blip_token_ids

    tok = _tok()
    torch.manual_seed(0)
    if arch in ("blip", "blip_vqa"):
        cfg = transformers.BlipConfig(
            text_config=dict(_TEXT, **blip_token_ids(tok)),
            vision_config=dict(_VISION),
            projection_dim=16,
        )
        cls = (
            transformers.BlipForConditionalGeneration
            if arch == "blip"
            else transformers.BlipForQuestionAnswering
        )
        return cls(cfg), _blip_processor(tok)
    if arch == "llava":
        cfg = transformers.LlavaConfig(
            vision_config=transformers.CLIPVisionConfig(**_VISION, projection_dim=16),
            text_config=transformers.LlamaConfig(
                vocab_size=len(tok) + 1,
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                max_position_embeddings=96,
                pad_token_id=0,
            ),
            image_token_index=len(tok),
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
        )
        ip = transformers.CLIPImageProcessor(
            size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
        )
        proc = transformers.LlavaProcessor(
            image_processor=ip,
            tokenizer=tok,
            patch_size=8,
            vision_feature_select_strategy="default",
        )
        return transformers.LlavaForConditionalGeneration(cfg), proc
    if arch == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=len(tok),
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=96,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        return transformers.GPT2LMHeadModel(cfg), tok
    if arch == "bert":
        cfg = transformers.BertConfig(vocab_size=len(tok), num_labels=5, **_TEXT)
        return transformers.BertForSequenceClassification(cfg), tok
    raise KeyError(arch)


ARCHS = ("blip", "blip_vqa", "llava", "gpt2", "bert")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """``tiny_base(arch) -> folder`` of a saved tiny checkpoint (built once per session)."""
    cache: dict = {}

    def get(arch: str) -> str:
        if arch not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model, proc = _build(arch)
                d = tmp_path_factory.mktemp(f"base-{arch}")
                model.save_pretrained(d)
                proc.save_pretrained(d)
            cache[arch] = str(d)
        return cache[arch]

    return get


def small_config(base: str, tmp_path, **kw):
    """A TrainConfig small enough for a test: 2 train images, 2 eval images, few steps."""
    from repspace.training import TrainConfig

    args = dict(
        base=base,
        method="full",
        task="vqa",
        n_train=2,
        n_eval=2,
        image_size=18,
        steps=4,
        batch_size=16,
        lr=1e-3,
        warmup_ratio=0.0,
        seed=0,
        save_every=2,
        max_new_tokens=4,
        output_dir=str(tmp_path / "run"),
    )
    args.update(kw)
    return TrainConfig(**args)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*torchvision.*")
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        yield
