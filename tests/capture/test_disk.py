"""Disk sink: round trip, manifest, resume after a crash, atomic writes, lazy loading."""

import copy
import json
import os

import peft
import pytest
import torch

from repspace.capture import DiskSink, MemorySink, Pooling, capture, capture_paired, load_capture

from .conftest import make_text, nonzero_lora


@pytest.fixture
def pair(bert):
    tuned = nonzero_lora(
        peft.get_peft_model(copy.deepcopy(bert), peft.LoraConfig(target_modules=["query"], r=2))
    )
    return bert, tuned


@pytest.fixture
def data():
    return make_text(n=20, seed=11)


def _batches(data, size=4):
    return [{k: v[i : i + size] for k, v in data.items()} for i in range(0, 20, size)]


def test_round_trip_and_manifest(pair, data, tmp_path):
    base, tuned = pair
    layers = ["embeddings", "blocks"]
    disk = capture_paired(
        base,
        tuned,
        data,
        layers,
        sink=DiskSink(tmp_path / "run", shard_size=8),
        batch_size=4,
        progress=False,
    )
    mem = capture_paired(base, tuned, data, layers, sink=MemorySink(), batch_size=4, progress=False)
    cap = load_capture(tmp_path / "run")
    assert cap.complete and cap.n == 20 and cap.sides == ["base", "tuned"]
    assert cap.layers == ["embeddings", "encoder.layer.0", "encoder.layer.1"]
    for side in ("base", "tuned"):
        for layer in cap.layers:
            assert torch.equal(cap[side, layer], mem.tensors[side][layer])
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["pooling"] == {"mode": "mean", "max_tokens": None, "seed": 0, "modality": "auto"}
    assert m["dtype"] == "float32" and m["batches"] == 5 and len(m["shards"]) == 3  # 8 + 8 + 4
    assert [s["n"] for s in m["shards"]] == [8, 8, 4]
    assert m["models"]["base"]["architecture"] == "BertModel"
    assert m["models"]["tuned"]["peft"] == ["LORA"]
    assert len(m["data_hash"]) == 64
    assert disk.manifest["data_hash"] == m["data_hash"]  # what the sink returned is what it wrote
    assert m["streams"] == {
        "embeddings": "text",
        "encoder.layer.0": "text",
        "encoder.layer.1": "text",
    }
    # Same inputs, other batching -> other hash; same batching -> same hash.
    again = capture(
        base,
        data,
        "blocks",
        sink=DiskSink(tmp_path / "b", shard_size=8),
        batch_size=4,
        progress=False,
    )
    assert again.manifest["data_hash"] == m["data_hash"]
    # Streaming back into the accumulator matches streaming directly.
    acc = cap.to_accumulator()
    assert acc.n == 20
    direct = capture_paired(base, tuned, data, layers, batch_size=4, progress=False).acc
    torch.testing.assert_close(
        acc.tuned["encoder.layer.1"].mean(), direct.tuned["encoder.layer.1"].mean()
    )
    assert [set(s) for s in cap.iter_shards()] == [{"base", "tuned"}] * 3


def test_tokens_and_half_precision_on_disk(pair, data, tmp_path):
    base, tuned = pair
    pool = Pooling("tokens", max_tokens=3, seed=1)
    disk = capture_paired(
        base,
        tuned,
        data,
        "blocks",
        pooling=pool,
        sink=DiskSink(tmp_path / "t", dtype="float16"),
        batch_size=4,
        progress=False,
    )
    mem = capture_paired(
        base, tuned, data, "blocks", pooling=pool, sink=MemorySink(), batch_size=4, progress=False
    )
    cap = load_capture(disk.path)
    x = cap["tuned", "encoder.layer.0"]
    assert x.dtype == torch.float16 and cap.manifest["dtype"] == "float16"
    torch.testing.assert_close(
        x.float(), mem.tensors["tuned"]["encoder.layer.0"], rtol=1e-2, atol=1e-2
    )
    assert torch.equal(
        cap.sample_index("base", "encoder.layer.0"), mem.sample_index["base"]["encoder.layer.0"]
    )


class Crash(RuntimeError):
    pass


def _crashing(batches, after):
    for i, b in enumerate(batches):
        if i == after:
            raise Crash("simulated crash")
        yield b


def test_resume_after_crash(pair, data, tmp_path):
    base, tuned = pair
    path = tmp_path / "resume"
    with pytest.raises(Crash):
        capture_paired(
            base,
            tuned,
            _crashing(_batches(data), 3),
            "blocks",
            sink=DiskSink(path, shard_size=4),
            progress=False,
        )
    m = json.loads((path / "manifest.json").read_text())
    assert m["batches"] == 3 and m["n"] == 12 and not m["complete"]
    # A crash while writing: a stray temp file and a shard the manifest never listed.
    (path / ".shard-00003.safetensors.123.tmp").write_bytes(b"partial")
    (path / "shard-00003.safetensors").write_bytes(b"garbage")
    calls = []
    handle = tuned.get_base_model().embeddings.register_forward_hook(lambda *a: calls.append(1))
    sink = capture_paired(
        base, tuned, _batches(data), "blocks", sink=DiskSink(path, shard_size=4), progress=False
    )
    handle.remove()
    assert len(calls) == 2  # only the two missing batches were recomputed
    assert not list(path.glob("*.tmp"))
    fresh = capture_paired(base, tuned, _batches(data), "blocks", sink=MemorySink(), progress=False)
    cap = load_capture(path)
    assert cap.complete and cap.n == 20 and sink.manifest["batches"] == 5
    for side in ("base", "tuned"):
        for layer in cap.layers:
            assert torch.equal(cap[side, layer], fresh.tensors[side][layer])
    # A complete capture resumes as a no-op.
    capture_paired(
        base, tuned, _batches(data), "blocks", sink=DiskSink(path, shard_size=4), progress=False
    )
    assert load_capture(path).n == 20


def test_resume_refuses_other_inputs_or_settings(pair, data, tmp_path):
    base, tuned = pair
    path = tmp_path / "r"
    with pytest.raises(Crash):
        capture_paired(
            base,
            tuned,
            _crashing(_batches(data), 2),
            "blocks",
            sink=DiskSink(path, shard_size=4),
            progress=False,
        )
    other = make_text(n=20, seed=12)
    with pytest.raises(ValueError, match="differ from those of the interrupted capture"):
        capture_paired(
            base,
            tuned,
            _batches(other),
            "blocks",
            sink=DiskSink(path, shard_size=4),
            progress=False,
        )
    with pytest.raises(ValueError, match=r"differs in \['layers'\]"):
        capture_paired(
            base, tuned, _batches(data), "embeddings", sink=DiskSink(path), progress=False
        )
    with pytest.raises(ValueError, match="only 1"):
        capture_paired(
            base,
            tuned,
            _batches(data)[:1],
            "blocks",
            sink=DiskSink(path, shard_size=4),
            progress=False,
        )
    with pytest.raises(ValueError, match="already holds a capture"):
        DiskSink(path, resume=False).start({})
    sink = capture_paired(
        base,
        tuned,
        _batches(other),
        "blocks",
        sink=DiskSink(path, shard_size=4, overwrite=True),
        progress=False,
    )
    assert sink.manifest["n"] == 20 and sink.manifest["complete"]


def test_disk_errors(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        DiskSink(tmp_path, dtype="int8")
    with pytest.raises(ValueError, match="no manifest.json"):
        load_capture(tmp_path)


def test_files_honour_the_umask(pair, data, tmp_path):
    """Shards and the manifest get the modes the umask asks for, not mkstemp's 0600."""
    base, tuned = pair
    old = os.umask(0o022)
    try:
        capture_paired(
            base,
            tuned,
            data,
            "blocks",
            sink=DiskSink(tmp_path / "run", shard_size=8),
            batch_size=4,
            progress=False,
        )
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").iterdir() if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files), {
        p.name: oct(p.stat().st_mode & 0o777) for p in files
    }
