"""Code execution attempts: remote code (auto_map), pickle payloads, class names as code."""

import json

import pytest

from tests.hostile.conftest import (
    FAST,
    add_auto_map,
    payload_pickle,
    refused,
    torch_save_payload,
)


@pytest.mark.parametrize(
    "file",
    [
        "config.json",
        "tokenizer_config.json",
        "processor_config.json",
        "preprocessor_config.json",
        "image_processor_config.json",
    ],
)
def test_auto_map_in_the_base_is_refused_before_transformers(ws, capsys, file):
    add_auto_map(ws.base, file)
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, "-o", "out", *FAST],
        names=str(ws.base / file),
        out=ws.root / "work" / "out",
    )
    assert "auto_map" in line and "never runs" in line


def test_auto_map_in_a_tuned_model_folder(ws, capsys):
    import shutil

    tuned = ws.root / "tuned"
    shutil.copytree(ws.base, tuned)
    add_auto_map(tuned)
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, tuned, "--probe", ws.probe, "-o", "out", *FAST],
        names=str(tuned / "config.json"),
    )


def test_custom_pipelines_entry(ws, capsys):
    add_auto_map(ws.base, key="custom_pipelines")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names="custom_pipelines",
    )


def test_auto_map_nested_in_a_processor_config(ws, capsys):
    (ws.base / "processor_config.json").write_text(
        json.dumps({"image_processor": {"auto_map": {"AutoImageProcessor": "evil.Evil"}}})
    )
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(ws.base / "processor_config.json"),
    )


def test_auto_map_in_the_config_of_a_bare_weights_file(ws, capsys):
    cfg = ws.root / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text((ws.base / "config.json").read_text())
    add_auto_map(cfg)
    refused(
        capsys,
        ws.root,
        [
            "compare",
            ws.base,
            ws.base / "model.safetensors",
            "--config",
            cfg,
            "--probe",
            ws.probe,
            *FAST,
        ],
        names=str(cfg / "config.json"),
    )


def test_auto_map_in_an_adapter_config(ws, capsys):
    add_auto_map(ws.adapter, "adapter_config.json")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(ws.adapter / "adapter_config.json"),
    )


def test_auto_map_in_layers(ws, capsys):
    add_auto_map(ws.base)
    refused(capsys, ws.root, ["layers", ws.base], names=str(ws.base / "config.json"))


def test_auto_map_in_layers_via_adapter(ws, capsys):
    add_auto_map(ws.base)
    (ws.adapter / "config.json").unlink(missing_ok=True)
    refused(capsys, ws.root, ["layers", ws.adapter], names=str(ws.base / "config.json"))


@pytest.mark.parametrize(
    "suffix,how", [(".pt", "os.system"), (".bin", "exec"), (".ckpt", "eval"), (".pth", "os.system")]
)
def test_pickle_payload_weights_file(ws, capsys, suffix, how):
    evil = payload_pickle(ws.root / f"tuned{suffix}", ws.root / "PWNED", how)
    line = refused(
        capsys, ws.root, ["compare", ws.base, evil, "--probe", ws.probe, *FAST], names=str(evil)
    )
    assert "refused" in line and "weights_only=False" not in line


def test_payload_inside_torch_save_zip(ws, capsys):
    evil = torch_save_payload(ws.root / "mixed.pt", ws.root / "PWNED")
    refused(
        capsys, ws.root, ["compare", ws.base, evil, "--probe", ws.probe, *FAST], names=str(evil)
    )


def test_payload_as_pytorch_model_bin_in_a_model_folder(ws, capsys):
    import shutil

    tuned = ws.root / "tuned"
    shutil.copytree(ws.base, tuned)
    (tuned / "model.safetensors").unlink()
    torch_save_payload(tuned / "pytorch_model.bin", ws.root / "PWNED")
    refused(
        capsys, ws.root, ["compare", ws.base, tuned, "--probe", ws.probe, *FAST], names=str(tuned)
    )


def test_payload_as_adapter_model_bin(ws, capsys):
    (ws.adapter / "adapter_model.safetensors").unlink()
    payload_pickle(ws.adapter / "adapter_model.bin", ws.root / "PWNED")
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(ws.adapter / "adapter_model.bin"),
    )


def test_hostile_file_name_is_not_pasted_into_a_shell_hint(ws, capsys):
    evil = payload_pickle(ws.root / "x'; touch PWNED; echo '.pt", ws.root / "PWNED")
    line = refused(
        capsys, ws.root, ["compare", ws.base, evil, "--probe", ws.probe, *FAST], names="touch PWNED"
    )
    assert "python -c" not in line and "torch.load(" not in line


@pytest.mark.parametrize(
    "arch",
    ["pipeline", "AutoTokenizer", "BertTokenizerFast", "Trainer", "os.system", "GenerationMixin"],
)
def test_architectures_naming_no_model_class(ws, capsys, arch):
    cfg = json.loads((ws.base / "config.json").read_text())
    cfg["architectures"] = [arch]
    (ws.base / "config.json").write_text(json.dumps(cfg))
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=repr(arch),
    )


@pytest.mark.parametrize("cls", ["pipeline", "BertTokenizer"])
def test_layers_model_class_must_be_a_model(ws, capsys, cls):
    refused(capsys, ws.root, ["layers", ws.base, "--model-class", cls], names=repr(cls))


def test_prompt_tuning_adapter_naming_a_remote_code_tokenizer(ws, capsys):
    evil_tok = ws.root / "evil-tokenizer"
    evil_tok.mkdir()
    add_auto_map(evil_tok, "tokenizer_config.json")
    path = ws.adapter / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(
        peft_type="PROMPT_TUNING",
        prompt_tuning_init="TEXT",
        prompt_tuning_init_text="hi",
        tokenizer_name_or_path=str(evil_tok),
        tokenizer_kwargs={"trust_remote_code": True},
    )
    path.write_text(json.dumps(cfg))
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(evil_tok / "tokenizer_config.json"),
    )


def test_xlora_adapter_referring_to_other_folders(ws, capsys):
    path = ws.adapter / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(peft_type="XLORA", adapters={"0": str(ws.root / "elsewhere")})
    path.write_text(json.dumps(cfg))
    refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", ws.probe, *FAST],
        names=str(path),
    )
