"""Checkpoint detection and loading: every supported kind, and every way it can go wrong."""

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from repspace.checkpoints import (
    CheckpointError,
    checkpoint_sha256,
    detect_kind,
    load_checkpoint,
    read_state_dict,
)


def tiny_bert(hidden=32, seed=0):
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=64,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return BertModel(cfg).eval()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("base") / "tiny-bert"
    tiny_bert().save_pretrained(d)
    return d


def outputs(model, seed=1):
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(input_ids=ids).last_hidden_state


def test_hf_folder_round_trip(base_dir):
    ck = load_checkpoint(base_dir)
    assert ck.kind == "hf" and ck.name == "tiny-bert" and not ck.model.training
    torch.testing.assert_close(outputs(ck.model), outputs(tiny_bert()))
    assert ck.sha256 == checkpoint_sha256(base_dir) and len(ck.sha256) == 64


def test_state_dict_files_apply_onto_the_base_architecture(base_dir, tmp_path):
    tuned = tiny_bert(seed=7)
    sd = tuned.state_dict()
    files = {
        "plain.safetensors": None,
        "lightning.ckpt": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
        "ddp.pt": {f"module.{k}": v for k, v in sd.items()},
    }
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "plain.safetensors")
    for name, obj in files.items():
        if obj is not None:
            torch.save(obj, tmp_path / name)
    for name in files:
        ck = load_checkpoint(tmp_path / name, base=base_dir)
        assert ck.kind == "state_dict" and ck.base == str(base_dir) and ck.notes == []
        torch.testing.assert_close(outputs(ck.model), outputs(tuned))


def test_malicious_pickle_is_refused_and_never_runs(base_dir, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    with pytest.raises(CheckpointError, match=r"evil\.ckpt: refused .*arbitrary code") as e:
        load_checkpoint(tmp_path / "evil.ckpt", base=base_dir)
    assert "\n" not in str(e.value) and "safetensors" in str(e.value)
    assert not marker.exists()
    # torch's own writer with a non-tensor object is refused the same way
    torch.save({"state_dict": {"w": torch.zeros(1)}, "cfg": Payload()}, tmp_path / "evil2.pt")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(tmp_path / "evil2.pt")
    assert not marker.exists()


def test_truncated_safetensors(base_dir, tmp_path):
    save_file(
        {k: v.contiguous() for k, v in tiny_bert().state_dict().items()},
        tmp_path / "full.safetensors",
    )
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: not a readable safetensors"):
        load_checkpoint(tmp_path / "cut.safetensors", base=base_dir)


def test_wrong_architecture_is_named(base_dir, tmp_path):
    save_file(
        {k: v.contiguous() for k, v in tiny_bert(hidden=16).state_dict().items()},
        tmp_path / "small.safetensors",
    )
    with pytest.raises(CheckpointError, match=r"wrong shape for BertModel .*--config"):
        load_checkpoint(tmp_path / "small.safetensors", base=base_dir)
    sd = tiny_bert().state_dict()
    sd.pop("encoder.layer.1.output.dense.weight")
    sd["classifier.weight"] = torch.zeros(2, 32)
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "partial.safetensors")
    with pytest.raises(CheckpointError, match=r"1 missing key.*1 unexpected key"):
        load_checkpoint(tmp_path / "partial.safetensors", base=base_dir)
    ck = load_checkpoint(tmp_path / "partial.safetensors", base=base_dir, strict=False)
    assert len(ck.notes) == 2


def test_bare_state_dict_needs_a_base(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="pass the base checkpoint"):
        load_checkpoint(tmp_path / "w.safetensors")


def lora_adapter(base_dir, out, base_name):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_bert(), LoraConfig(r=2, target_modules=["query", "value"]))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # a non-zero update
    model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = base_name
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return model


def test_peft_adapter_folder_resolves_its_base(base_dir, tmp_path):
    trained = lora_adapter(base_dir, tmp_path / "lora", str(base_dir))
    ck = load_checkpoint(tmp_path / "lora")
    assert ck.kind == "peft" and ck.base == str(base_dir)
    torch.testing.assert_close(outputs(ck.model), outputs(trained.eval()))
    assert (outputs(ck.model) - outputs(tiny_bert())).abs().max() > 1e-3


def test_adapter_whose_base_is_missing(base_dir, tmp_path):
    lora_adapter(base_dir, tmp_path / "a", str(tmp_path / "gone"))
    with pytest.raises(CheckpointError, match=r"base model .*gone does not exist.*--base"):
        load_checkpoint(tmp_path / "a")
    lora_adapter(base_dir, tmp_path / "b", "")
    with pytest.raises(CheckpointError, match="does not name its base model"):
        load_checkpoint(tmp_path / "b")
    assert load_checkpoint(tmp_path / "b", base=base_dir).kind == "peft"


def test_detection_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="without config.json"):
        detect_kind(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="unknown checkpoint file type"):
        detect_kind(str(tmp_path / "notes.txt"))
    with pytest.raises(CheckpointError, match="no such file"):
        detect_kind(str(tmp_path / "missing.safetensors"))
    assert detect_kind("bert-base-uncased") == "hub"


def test_hub_id_offline_gives_one_line_error():
    with pytest.raises(
        CheckpointError, match=r"hub .*offline machine pass a local model folder"
    ) as e:
        load_checkpoint("some-org/model-that-is-not-cached")
    assert "\n" not in str(e.value)
