"""BLIP's VQA model (BlipForQuestionAnswering, e.g. Salesforce/blip-vqa-base): its answer
decoder is fed ``decoder_input_ids`` although its config is not an encoder-decoder one.
`repspace compare` must give it decoder inputs (and the right start token) like T5."""

import json
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def blip_vqa(tmp_path_factory):
    from tests.training.conftest import _build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, proc = _build("blip_vqa")
        folder = tmp_path_factory.mktemp("blip-vqa")
        model.save_pretrained(folder)
        proc.save_pretrained(folder)
    return folder, model


def test_decoder_inputs_start_with_the_models_own_start_token(blip_vqa):
    from repspace.probe import load_probe, make_batches
    from repspace.probe.processors import choose_processor  # noqa: F401 - the real path below
    from repspace.checkpoints import load_checkpoint

    folder, model = blip_vqa
    ck = load_checkpoint(str(folder))
    probe = load_probe("builtin", num_samples=4, seed=0)
    batch = next(iter(make_batches(probe, ck.model, ck.processor, batch_size=4)))
    assert "decoder_input_ids" in batch
    assert (batch["decoder_input_ids"][:, 0] == model.decoder_start_token_id).all()
    torch.testing.assert_close(batch["decoder_input_ids"][:, 1:], batch["input_ids"][:, :-1])


def test_compare_runs_on_blip_vqa_and_reaches_the_answer_decoder(blip_vqa, tmp_path):
    from repspace.cli import main

    folder, _ = blip_vqa
    out = tmp_path / "report"
    assert (
        main(
            [
                "compare",
                str(folder),
                str(folder),
                "-o",
                str(out),
                "--metrics",
                "linear_cka",
                "--num-samples",
                "12",
                "--embedding",
                "none",
                "--quiet",
            ]
        )
        == 0
    )
    rows = json.loads((out / "report.json").read_text())["results"]
    layers = [r["layer"] for r in rows]
    assert any(name.startswith("text_decoder.") for name in layers), layers
    assert all(r["metrics"]["linear_cka"] == pytest.approx(1.0, abs=1e-9) for r in rows)


def test_a_lora_on_the_answer_decoder_moves_only_the_decoder(blip_vqa, tmp_path):
    from peft import LoraConfig, get_peft_model

    from repspace.cli import main

    folder, model = blip_vqa
    torch.manual_seed(1)
    lora = get_peft_model(
        model,
        LoraConfig(r=4, target_modules=r"text_decoder\..*\.(query|value)", init_lora_weights=False),
    )
    adapter = tmp_path / "lora"
    lora.save_pretrained(adapter)
    lora.unload()  # leave the module-scoped model as it was
    out = tmp_path / "report"
    assert (
        main(
            [
                "compare",
                str(folder),
                str(adapter),
                "-o",
                str(out),
                "--metrics",
                "linear_cka",
                "--num-samples",
                "12",
                "--embedding",
                "none",
                "--quiet",
            ]
        )
        == 0
    )
    rows = {
        r["layer"]: r["metrics"]["linear_cka"]
        for r in json.loads((out / "report.json").read_text())["results"]
    }
    decoder = [v for k, v in rows.items() if k.startswith("text_decoder.")]
    others = [v for k, v in rows.items() if not k.startswith("text_decoder.")]
    assert decoder and min(decoder) < 1 - 1e-6
    assert others and all(v == pytest.approx(1.0, abs=1e-9) for v in others)
