"""repspace's image-only processor against transformers' own processor class.

Qwen2-VL's processor cannot be built without torchvision (its video processor needs it), so
repspace puts its tokenizer and image processor back together
(:class:`repspace.checkpoints.processors.ImageOnlyProcessor`).  Here the real processor class is
built with its video half bypassed — in this test only — and both must give the same
``input_ids``, ``attention_mask``, ``mm_token_type_ids``, ``pixel_values`` and
``image_grid_thw`` for prompts built the way the probe builds them, on images of several sizes.
"""

import json
import shutil

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.compat import checks  # noqa: E402

SIZES = [(16, 16), (40, 24), (24, 56), (33, 17), (64, 64)]


def _real_processor(cls, image_processor, tokenizer, chat_template):
    """``cls`` without its video processor: the bypass exists in this test only."""
    attributes = [a for a in cls.get_attributes() if a != "video_processor"]
    images_only = type(
        f"{cls.__name__}NoVideo", (cls,), {"get_attributes": classmethod(lambda c: attributes)}
    )
    return images_only(image_processor, tokenizer, None, chat_template=chat_template)


def _images(seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in SIZES]


def _assert_same(ours, theirs):
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    for key in theirs:
        assert torch.equal(torch.as_tensor(ours[key]), torch.as_tensor(theirs[key])), key


@pytest.fixture(scope="module")
def qwen2_vl(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen2vl")
    return checks.build("qwen2_vl", root)["base"]


def test_loader_builds_the_image_only_processor(qwen2_vl):
    from repspace.checkpoints.loader import load_processor
    from repspace.checkpoints.processors import ImageOnlyProcessor

    proc = load_processor(str(qwen2_vl))
    assert isinstance(proc, ImageOnlyProcessor)
    assert proc.processor_class is transformers.Qwen2VLProcessor
    assert proc.image_token == "<|image_pad|>" and proc.chat_template


@pytest.mark.parametrize(
    "cls_name", ["Qwen2VLProcessor", "Qwen2_5_VLProcessor", "Qwen3VLProcessor", "Glm4vProcessor"]
)
def test_matches_the_real_processor(cls_name, qwen2_vl, tmp_path):
    """Same outputs as transformers' class, for every class of the Qwen2-VL family the probe
    would meet (the folder names the class, the rule is the class's own)."""
    from repspace.checkpoints.loader import load_processor
    from repspace.probe.prompts import image_prompts

    cls = getattr(transformers, cls_name, None)
    if cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {cls_name}")
    folder = tmp_path / cls_name
    shutil.copytree(qwen2_vl, folder)
    cfg = json.loads((folder / "preprocessor_config.json").read_text())
    cfg["processor_class"] = cls_name
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg))
    ours = load_processor(str(folder))
    assert ours.processor_class is cls
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    if cls_name == "Glm4vProcessor":  # its default placeholder is <|image|>; name the model's
        tok.image_token = "<|image_pad|>"
        ours.tokenizer.image_token = "<|image_pad|>"
    image_processor = transformers.AutoImageProcessor.from_pretrained(folder)
    theirs = _real_processor(cls, image_processor, tok, ours.chat_template)
    images = _images()
    texts = [f"caption number {i} of a red square" for i in range(len(images))]
    for prompts in (
        image_prompts(ours, texts, "chat"),
        # two images in one prompt, none in another: placeholders consumed in order
        [
            "<|image_pad|> a <|image_pad|> b",
            "no image",
            "c <|image_pad|>",
            "<|image_pad|><|image_pad|>",
        ],
    ):
        kw = dict(return_tensors="pt", padding=True)
        got, want = (
            ours(text=prompts, images=images, **kw),
            theirs(text=prompts, images=images, **kw),
        )
        _assert_same(got, want)
        per_image = want["image_grid_thw"].prod(-1) // image_processor.merge_size**2
        assert int(got["mm_token_type_ids"].eq(1).sum()) == int(per_image.sum())
    with pytest.raises(ValueError, match="found 1 <\\|image_pad\\|> tokens in the prompts for 2"):
        ours(text=["<|image_pad|> x"], images=images[:2], return_tensors="pt")


def test_nested_processor_config_layout(qwen2_vl, tmp_path):
    """A folder saved by transformers 5 (``processor_config.json`` holding the image processor)
    loads the same way, and the probe batches equal the real processor's."""
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import load_probe, make_batches

    tok = transformers.AutoTokenizer.from_pretrained(qwen2_vl)
    image_processor = transformers.AutoImageProcessor.from_pretrained(qwen2_vl)
    real = _real_processor(transformers.Qwen2VLProcessor, image_processor, tok, tok.chat_template)
    folder = tmp_path / "nested"
    real.save_pretrained(folder)
    cfg = json.loads((folder / "processor_config.json").read_text())
    cfg["processor_class"] = "Qwen2VLProcessor"  # the bypass class saved its own name
    (folder / "processor_config.json").write_text(json.dumps(cfg))
    for f in ("config.json", "model.safetensors"):
        shutil.copy(qwen2_vl / f, folder / f)
    assert not (folder / "preprocessor_config.json").exists()
    model = checks.load(qwen2_vl)
    probe = load_probe("builtin", num_samples=6)
    ours = next(make_batches(probe, model, load_processor(str(folder)), batch_size=6))
    theirs = next(make_batches(probe, model, real, batch_size=6))
    _assert_same(ours, theirs)
    assert ours["pixel_values"].ndim == 2 and len(ours["image_grid_thw"]) == 6


def test_processor_with_its_own_call_is_not_reproduced(qwen2_vl, tmp_path):
    """A class whose __call__ is its own code (not the generic pipeline reproduced here) keeps
    the original one-line error instead of an imitation."""
    from repspace.checkpoints.processors import image_only_processor

    cls = next(
        (
            c
            for c in ("InternVLProcessor", "Qwen2_5OmniProcessor")
            if getattr(transformers, c, None) is not None
            and "video_processor" in getattr(transformers, c).get_attributes()
            and getattr(transformers, c).__call__ is not transformers.ProcessorMixin.__call__
        ),
        None,
    )
    if cls is None:
        pytest.skip("no video-capable processor with its own __call__ in this transformers")
    folder = tmp_path / "own-call"
    shutil.copytree(qwen2_vl, folder)
    cfg = json.loads((folder / "preprocessor_config.json").read_text())
    cfg["processor_class"] = cls
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg))
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert image_only_processor(str(folder), tok, "ImportError: torchvision") is None
    assert image_only_processor(str(qwen2_vl), tok, "ImportError: torchvision") is not None


def test_image_token_from_the_model_config(qwen2_vl, tmp_path):
    """A tokenizer without ``image_token``: the placeholder is the model's image_token_id."""
    from repspace.checkpoints.processors import image_only_processor

    tok = transformers.AutoTokenizer.from_pretrained(qwen2_vl)
    assert getattr(tok, "image_token", None) is None
    cfg = json.loads((qwen2_vl / "config.json").read_text())
    proc = image_only_processor(str(qwen2_vl), tok, "ImportError")
    assert proc.image_token_id == cfg["image_token_id"]
    assert proc.video_token_id == cfg["video_token_id"]
