"""``device_map`` (accelerate's big-model dispatch) reaches from_pretrained; capture follows it."""

import pytest

from repspace.checkpoints import load_checkpoint
from repspace.compare import compare


def test_loader_passes_device_map(base_dir, lora_dir, monkeypatch):
    import transformers

    seen, original = [], transformers.BertModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("device_map"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.BertModel, "from_pretrained", classmethod(spy))
    ck = load_checkpoint(lora_dir, base=base_dir, device_map="auto")  # adapter → its base too
    load_checkpoint(base_dir)
    assert seen == ["auto", None]
    assert next(ck.model.parameters()).device.type == "cpu"  # accelerate: no GPU here


def test_compare_with_device_map_equals_plain_compare(base_dir, lora_dir, probe_file):
    kw = dict(
        probe=str(probe_file),
        num_samples=24,
        batch_size=8,
        embedding="none",
        progress=False,
        metrics=["linear_cka", "frechet_distance"],
    )
    plain = compare(str(base_dir), [str(lora_dir)], **kw)
    mapped = compare(str(base_dir), [str(lora_dir)], device_map="cpu", **kw)
    assert mapped.settings["device_map"] == "cpu"
    for layer in plain.layers:
        for k, v in plain.metrics["lora-r4"][layer].items():
            assert mapped.metrics["lora-r4"][layer][k] == pytest.approx(v, rel=1e-10)
