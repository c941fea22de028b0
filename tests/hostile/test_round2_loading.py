"""Issue 26, round two, loading: sizes a config claims against the weights it ships, shard
indexes that point outside the folder (and the hash), regexes peft would match, loops in the
chain of recorded bases, and Hub kernels.  Every case runs the CLI on save_pretrained folders
of the hostile world (tests/hostile/conftest.py), tampered on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers

import repspace.compare.api as api
from repspace.checkpoints import CheckpointError, checkpoint_sha256, load_checkpoint
from repspace.cli import main
from tests.hostile.conftest import FAST, refused


@pytest.fixture
def no_build(monkeypatch):
    """Any transformers model built from weights fails the test: the refusal must come first."""

    def boom(cls, *a, **k):
        raise AssertionError(f"{cls.__name__}.from_pretrained ran before the refusal")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(boom))


@pytest.fixture
def no_model(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a checkpoint was loaded before the refusal")

    monkeypatch.setattr(api, "load_checkpoint", boom)


def _edit(path: Path, **changes) -> None:
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def _compare(ws, base, tuned, *extra):
    return ["compare", base, tuned, "--probe", ws.probe, *FAST, "--no-report", *extra]


# -- 1. sizes a config claims, checked against the weights before anything is built ------------


@pytest.mark.parametrize(
    "changes,says",
    [
        ({"num_hidden_layers": 20000}, "num_hidden_layers is 20,000"),  # step 1: the count
        ({"num_hidden_layers": 60}, "num_hidden_layers 60"),  # step 2: parameters
        (
            {"hidden_size": 4096, "intermediate_size": 16384, "num_attention_heads": 32},
            "hidden_size 4096",
        ),  # width
        ({"vocab_size": 10**9}, "vocab_size 1000000000"),
    ],
)
def test_a_config_claiming_more_than_its_weights_is_refused_before_building(
    ws, capsys, no_build, changes, says
):
    _edit(ws.base / "config.json", **changes)
    line = refused(
        capsys, ws.root, _compare(ws, ws.base, ws.adapter), names=str(ws.base / "config.json")
    )
    assert says in line and "model.safetensors" in line and "3 numbered layer(s)" in line


def test_a_tuned_full_fine_tune_with_an_inflated_config_is_refused(ws, capsys, no_build):
    tuned = ws.root / "full-ft"
    shutil.copytree(ws.base, tuned)
    _edit(tuned / "config.json", num_hidden_layers=5000)
    refused(capsys, ws.root, _compare(ws, ws.base, tuned), names=str(tuned / "config.json"))


def test_the_adapters_recorded_base_is_checked_too(ws, capsys, no_build):
    _edit(ws.base / "config.json", num_hidden_layers=100000)
    refused(
        capsys,
        ws.root,
        ["compare", ws.adapter, "--probe", ws.probe, *FAST, "--no-report"],
        names=str(ws.base / "config.json"),
    )


def test_repspace_layers_refuses_an_inflated_config_before_building_it(ws, capsys):
    _edit(ws.base / "config.json", num_hidden_layers=10**7)
    refused(capsys, ws.root, ["layers", ws.base], names=str(ws.base / "config.json"))


def test_a_model_sharing_one_stored_layer_across_many_still_loads(tmp_path):
    """ALBERT stores one layer group for its 12 layers: the bounds leave it alone."""
    cfg = transformers.AlbertConfig(
        vocab_size=40,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=12,
        num_attention_heads=2,
        intermediate_size=64,
    )
    transformers.AlbertModel(cfg).save_pretrained(tmp_path / "albert")
    ck = load_checkpoint(tmp_path / "albert")
    assert ck.model.config.num_hidden_layers == 12


@pytest.fixture
def vit(tmp_path):
    from tests.compat import zoo

    folder = tmp_path / "vit"
    zoo.save("vit", folder)
    return folder


@pytest.mark.parametrize(
    "size,says",
    [
        ({"height": 40000, "width": 40000}, "size.height is 40000"),
        ({"shortest_edge": 100000}, "size.shortest_edge is 100000"),
        ([40000, 40000], "size is 40000"),
    ],
)
def test_a_processor_asking_for_absurd_images_is_refused_at_the_door(
    vit, capsys, no_model, size, says
):
    _edit(vit / "preprocessor_config.json", size=size)
    line = refused(
        capsys,
        vit.parent,
        ["compare", vit, vit, "--probe", "builtin", *FAST, "--no-report"],
        names=str(vit / "preprocessor_config.json"),
    )
    assert says in line and "8,192" in line


def test_a_processor_asking_for_absurd_pixel_counts_is_refused(vit, capsys, no_model):
    _edit(vit / "preprocessor_config.json", max_pixels=10**12)
    refused(
        capsys,
        vit.parent,
        ["compare", vit, vit, *FAST, "--no-report"],
        names=str(vit / "preprocessor_config.json"),
    )


# -- 2. shard indexes: every file that contributes weights is inside the folder and the hash ---


def _shard(folder: Path, second: str) -> Path:
    """Split ``folder``'s model.safetensors in two shards; the second saved at ``second``
    (relative to the folder) and named so in model.safetensors.index.json."""
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    keys = sorted(state)
    half = len(keys) // 2
    (folder / "model.safetensors").unlink()
    save_file(
        {k: state[k] for k in keys[:half]},
        folder / "model-00001-of-00002.safetensors",
        metadata={"format": "pt"},
    )
    target = folder / second
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: state[k] for k in keys[half:]}, target, metadata={"format": "pt"})
    index = {
        "metadata": {},
        "weight_map": {
            **{k: "model-00001-of-00002.safetensors" for k in keys[:half]},
            **{k: second for k in keys[half:]},
        },
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return target


@pytest.mark.parametrize(
    "where",
    [
        "../elsewhere/model-00002-of-00002.safetensors",
        "sub/../../elsewhere/model-00002-of-00002.safetensors",
    ],
)
def test_a_shard_outside_the_folder_is_refused(ws, capsys, no_model, where):
    _shard(ws.base, where)
    line = refused(
        capsys,
        ws.root,
        _compare(ws, ws.base, ws.adapter),
        names=str(ws.base / "model.safetensors.index.json"),
    )
    assert "outside the checkpoint folder" in line


def test_an_absolute_shard_path_is_refused(ws, capsys, no_model):
    outside = ws.root / "elsewhere" / "shard.safetensors"
    outside.parent.mkdir()
    _shard(ws.base, "model-00002-of-00002.safetensors").rename(outside)
    index = json.loads((ws.base / "model.safetensors.index.json").read_text())
    index["weight_map"] = {
        k: (str(outside) if v.startswith("model-00002") else v)
        for k, v in index["weight_map"].items()
    }
    (ws.base / "model.safetensors.index.json").write_text(json.dumps(index))
    refused(
        capsys,
        ws.root,
        _compare(ws, ws.base, ws.adapter),
        names=str(ws.base / "model.safetensors.index.json"),
    )


def test_every_shard_an_index_names_is_in_the_hash_whatever_its_suffix(ws):
    """Two models differing only in a shard whose name has no weights suffix: both load, and
    their sha256 differ (the shard was left out of the hash before)."""
    other = ws.root / "other"
    shutil.copytree(ws.base, other)
    for folder in (ws.base, other):
        _shard(folder, "part-2.weights")
    from safetensors.torch import load_file, save_file

    state = load_file(other / "part-2.weights")
    save_file(
        {k: v + 1 for k, v in state.items()}, other / "part-2.weights", metadata={"format": "pt"}
    )
    a, b = load_checkpoint(ws.base), load_checkpoint(other)
    assert any(
        not torch.equal(p, q)
        for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values())
    )
    assert a.sha256 != b.sha256 and checkpoint_sha256(ws.base) != checkpoint_sha256(other)


def test_a_symlinked_shard_like_the_hub_cache_is_hashed_by_content(ws):
    """The Hugging Face cache links every file of a snapshot to a blob outside it: allowed,
    and the blob's bytes are what is hashed."""
    blob = _shard(ws.base, "model-00002-of-00002.safetensors")
    blobs = ws.root / "blobs"
    blobs.mkdir()
    shutil.move(blob, blobs / "abc123")
    blob.symlink_to(blobs / "abc123")
    before = load_checkpoint(ws.base).sha256
    data = bytearray((blobs / "abc123").read_bytes())
    data[-1] ^= 1  # one bit of a weight
    (blobs / "abc123").write_bytes(bytes(data))
    assert checkpoint_sha256(ws.base) != before


# -- 3. regexes of adapter configs: bounded or refused at the door -----------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("target_modules", r"(.*\.)*(query|value)"),  # nested: exponential on a near miss
        ("target_modules", r"(\w+\.?)+(query|value)"),
        ("target_modules", r"(a|aa)+\.query"),
        ("target_modules", r".*.*.*.*.*.*.*.*.*.*.*.*x"),  # polynomial of degree 12
        ("exclude_modules", r"(\w+)*\.key"),
        ("rank_pattern", {r"(.*a){25}": 8}),
        ("modules_to_save", [r"(\w|\w\w)+pooler"]),
        ("target_modules", r"(q)\1"),  # backreference
    ],
    ids=[
        "nested-group",
        "nested-word",
        "overlapping-alternation",
        "twelve-stars",
        "exclude_modules",
        "rank_pattern",
        "modules_to_save",
        "backreference",
    ],
)
def test_an_adapter_regex_that_backtracks_is_refused_before_any_model(
    ws, capsys, no_model, field, value
):
    _edit(ws.adapter / "adapter_config.json", **{field: value})
    line = refused(
        capsys,
        ws.root,
        _compare(ws, ws.base, ws.adapter),
        names=str(ws.adapter / "adapter_config.json"),
    )
    assert field in line


def test_a_plain_regex_target_still_loads_and_matches_as_peft_does(ws):
    _edit(ws.adapter / "adapter_config.json", target_modules=r".*\.(query|value)")
    ck = load_checkpoint(ws.adapter, base=ws.base)
    adapted = [n for n, m in ck.model.named_modules() if hasattr(m, "lora_A")]
    assert len(adapted) == 6 and all(n.endswith(("query", "value")) for n in adapted)


# -- 4. loops in the chain of recorded bases ---------------------------------------------------


def test_an_adapter_recording_itself_as_its_base(ws, capsys, no_build):
    _edit(ws.adapter / "adapter_config.json", base_model_name_or_path=str(ws.adapter))
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.adapter, "--probe", ws.probe, *FAST, "--no-report"],
        names=str(ws.adapter),
    )
    assert "loops" in line and "--base-override" in line


def test_two_adapters_recording_each_other(ws, capsys, no_build):
    other = ws.root / "lora-b"
    shutil.copytree(ws.adapter, other)
    _edit(ws.adapter / "adapter_config.json", base_model_name_or_path=str(other))
    _edit(other / "adapter_config.json", base_model_name_or_path=str(ws.adapter))
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.adapter, "--probe", ws.probe, *FAST, "--no-report"],
        names=f"{other} -> {ws.adapter} -> {other}",
    )
    assert "loops" in line


def test_weights_refuses_a_looping_base(ws, capsys, no_build):
    _edit(ws.adapter / "adapter_config.json", base_model_name_or_path=str(ws.adapter))
    refused(
        capsys,
        ws.root,
        ["weights", ws.adapter, ws.adapter, "-o", "out"],
        names="loops",
        out=ws.root / "work" / "out",
    )


def test_the_api_raises_a_checkpoint_error_not_a_recursion_error(ws):
    _edit(ws.adapter / "adapter_config.json", base_model_name_or_path=str(ws.adapter))
    with pytest.raises(CheckpointError, match="loops"):
        load_checkpoint(ws.adapter)


def test_a_looping_record_is_not_followed_when_the_base_is_given(ws, capsys):
    """compare BASE ADAPTER applies the adapter onto BASE: its own record is never read."""
    _edit(ws.adapter / "adapter_config.json", base_model_name_or_path=str(ws.adapter))
    assert main([str(a) for a in _compare(ws, ws.base, ws.adapter)]) == 0, capsys.readouterr().err


# -- 7. Hub kernels: off on every load -----------------------------------------------------------


def test_every_model_load_passes_use_kernels_false(ws, capsys, monkeypatch):
    from repspace.checkpoints.hf_format import load_saved_format

    calls = []
    real = transformers.PreTrainedModel.from_pretrained.__func__

    def spy(cls, *a, **k):
        calls.append((cls.__name__, k.get("use_kernels", "missing")))
        return real(cls, *a, **k)

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(spy))
    assert main([str(a) for a in _compare(ws, ws.base, ws.adapter, "--two-models")]) == 0
    load_saved_format(ws.base / "model.safetensors", str(ws.base), strict=True)
    from repspace.models import load_embedded

    load_embedded()
    assert len(calls) >= 4 and all(flag is False for _, flag in calls), calls
    assert "BlipForConditionalGeneration" in {name for name, _ in calls}


@pytest.mark.parametrize(
    "file,key,value",
    [
        ("config.json", "attn_implementation", "kernels-community/flash-attn3"),
        ("config.json", "experts_implementation", "evil-org/fast-moe"),
        ("config.json", "text_config", {"attn_implementation": "evil-org/attn:fwd"}),
    ],
)
def test_a_config_naming_a_hub_kernel_is_refused(ws, capsys, no_model, file, key, value):
    _edit(ws.base / file, **{key: value})
    line = refused(capsys, ws.root, _compare(ws, ws.base, ws.adapter), names=str(ws.base / file))
    assert "Hub kernel" in line


def test_the_command_line_turns_lazily_loaded_hub_kernels_off(ws, capsys, monkeypatch):
    monkeypatch.setenv("USE_HUB_KERNELS", "YES")
    main(["layers", str(ws.base)])
    import os

    assert os.environ["USE_HUB_KERNELS"] == "NO"
