"""A tiny BLIP (vision tower + text decoder) on the built-in image+caption probe set."""

import json
import warnings

import pytest
import torch

from repspace.cli import main


@pytest.fixture(scope="module")
def blip_dirs(tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    from repspace.data import blip_token_ids, build_tokenizer

    tok = build_tokenizer()
    cfg = BlipConfig(
        text_config=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            **blip_token_ids(tok),
        ),
        vision_config=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=32,
    )
    root = tmp_path_factory.mktemp("blip")
    torch.manual_seed(0)
    BlipForConditionalGeneration(cfg).save_pretrained(root / "base")
    BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok
    ).save_pretrained(root / "base")
    # LoRA on the text decoder only, with a non-zero update: vision layers must not move.
    lora = get_peft_model(
        BlipForConditionalGeneration.from_pretrained(root / "base"),
        LoraConfig(r=2, target_modules=r".*text_decoder.*\.(query|value)"),
    )
    for name, p in lora.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.3)
    lora.save_pretrained(root / "lora-text")
    return root / "base", root / "lora-text"


def test_builtin_probe_on_blip_separates_towers(blip_dirs, tmp_path, capsys):
    base, adapter = blip_dirs
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(
            [
                "compare",
                str(base),
                str(adapter),
                "-o",
                str(out),
                "--num-samples",
                "48",
                "--batch-size",
                "16",
                "--embedding",
                "pca",
                "--quiet",
            ]
        )
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert rep["inputs"]["probe"]["source"] == "builtin:shapes-world"
    assert rep["inputs"]["probe"]["modalities"] == ["text", "image"]
    cka = {r["layer"]: r["metrics"]["linear_cka"] for r in rep["results"]}
    vision = [v for k, v in cka.items() if k.startswith("vision_model.")]
    text = [v for k, v in cka.items() if k.startswith("text_decoder.")]
    assert len(vision) == 2 and len(text) == 2
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in vision)
    assert min(text) < 0.999


def test_blip_caption_probe_starts_with_decoder_token(blip_dirs):
    """BLIP's decoder was trained on [DEC] at position 0 (BLIP overwrites the tokenizer's
    [CLS]); the probe batches must do the same or they probe an unseen input."""
    from repspace.checkpoints import load_checkpoint
    from repspace.probe import load_probe, make_batches

    base, _ = blip_dirs
    ck = load_checkpoint(str(base))
    batch = next(make_batches(load_probe("builtin", num_samples=4), ck.model, ck.processor))
    bos = ck.model.config.text_config.bos_token_id
    assert (batch["input_ids"][:, 0] == bos).all()
    assert (batch["input_ids"][:, 1] != bos).all()
