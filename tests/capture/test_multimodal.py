"""LLaVA-style models: image features inside the text sequence are kept apart."""

import pytest
import torch

from repspace.capture import LayerCapture, Pooling, capture, resolve_layers

from .conftest import IMAGE_TOKEN, make_pixels, make_text


@pytest.fixture
def llava_batch():
    text = make_text(n=3, t=9, seed=6)
    text["input_ids"][:, 1:5] = IMAGE_TOKEN  # 4 placeholders = 4 patches (CLS dropped)
    text["attention_mask"][:, :5] = 1
    return {"pixel_values": make_pixels(3), **text}


def test_llava_towers_and_image_tokens(llava, llava_batch):
    assert resolve_layers(llava, "vision") == [
        "model.vision_tower.encoder.layers.0",
        "model.vision_tower.encoder.layers.1",
    ]
    assert resolve_layers(llava, "text") == [
        "model.language_model.layers.0",
        "model.language_model.layers.1",
    ]
    layer = "model.language_model.layers.1"
    with LayerCapture(llava, layer) as cap:
        full = cap.forward(llava_batch)[layer]
    mask = llava_batch["attention_mask"].bool()
    is_img = llava_batch["input_ids"] == IMAGE_TOKEN

    def pooled(modality, mode="mean"):
        return capture(
            llava, llava_batch, layer, pooling=Pooling(mode, modality=modality), progress=False
        ).tensors["base"][layer]

    def mean(sel):
        w = sel[..., None].float()
        return (full * w).sum(1) / w.sum(1)

    torch.testing.assert_close(pooled("auto"), mean(mask & ~is_img))
    torch.testing.assert_close(pooled("text"), mean(mask & ~is_img))
    torch.testing.assert_close(pooled("image"), mean(is_img))
    torch.testing.assert_close(pooled("all"), mean(mask))
    tok = capture(
        llava, llava_batch, layer, pooling=Pooling("tokens", modality="image"), progress=False
    ).tensors["base"][layer]
    assert tok.shape == (3 * 4, 32)
    # Vision-tower layers are image patches whatever the modality.
    vis = capture(llava, llava_batch, "vision", pooling="tokens", progress=False).tensors["base"]
    assert vis["model.vision_tower.encoder.layers.0"].shape == (3 * 5, 32)
    with pytest.raises(ValueError, match="modality must be"):
        Pooling("mean", modality="audio")
