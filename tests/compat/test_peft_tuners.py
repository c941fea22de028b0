"""One adapter of every tuner type the installed peft offers, on Llama and on BERT.

``PeftType`` is enumerated, so a new peft release adds its new tuners here by itself and
fails until each one compares or is skipped with a reason below.  Every trainable adapter
weight is moved off its (often identity) initialisation before ``save_pretrained``, so the
compare must see a change: CKA < 1 at some layer.
"""

import json

import pytest
import torch

from tests.compat import checks

peft = pytest.importorskip("peft")
from peft import PeftType, get_peft_model  # noqa: E402
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING  # noqa: E402

TARGETS = {"llama": ["q_proj", "v_proj"], "bert": ["query", "value"]}
TASK = {"llama": "CAUSAL_LM", "bert": "FEATURE_EXTRACTION"}
# Options that tiny (hidden 32) layers need, or that a tuner has no default for.
OPTIONS = {
    "ADALORA": dict(total_step=10, init_r=2, target_r=1),
    "ADAPTION_PROMPT": dict(adapter_len=4, adapter_layers=1),
    "OFT": dict(r=8, oft_block_size=0),
    "FOURIERFT": dict(n_frequency=64),
    "WAVEFT": dict(n_frequency=64),
    "VBLORA": dict(vector_length=4, num_vectors=16),
    "ROAD": dict(group_size=4),
    "C3A": dict(block_size=4),
}
EMBEDDINGS = {"llama": "embed_tokens", "bert": "word_embeddings"}
SKIP = {
    "XLORA": "X-LoRA mixes already trained LoRA experts (adapters=…); it has no adapter of its own "
    "to build from a config",
    "SHADOW": "peft 0.21's SHADOW layer returns a ShadowCarrier that the models' attention cannot "
    "use (AttributeError in the plain model forward, outside repspace)",
    ("bert", "ADAPTION_PROMPT"): "peft supports adaption prompts on Llama-style models only",
    ("bert", "CPT"): "peft's CPTConfig supports task_type CAUSAL_LM only",
    ("bert", "MULTITASK_PROMPT_TUNING"): "peft 0.21's PeftModelForFeatureExtraction.forward does "
    "not pass task_ids to the prompt encoder (fails outside "
    "repspace); tested on Llama",
}
TASK_CONDITIONED = {"MULTITASK_PROMPT_TUNING", "POLY"}


def _config(arch: str, kind: PeftType, base):
    import dataclasses

    cls = PEFT_TYPE_TO_CONFIG_MAPPING[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    kw = {"task_type": TASK[arch]}
    for key, value in (
        ("target_modules", TARGETS[arch]),
        ("num_virtual_tokens", 4),
        ("r", 2),
        ("feedforward_modules", []),
    ):
        if key in fields:
            kw[key] = value
    kw.update(OPTIONS.get(kind.name, {}))
    if kind.name == "ADAPTION_PROMPT":
        del kw["target_modules"]  # it names attention modules, its default is Llama's
    if kind.name == "TRAINABLE_TOKENS":  # tokens the probe captions use, so the change shows
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(base)
        kw["target_modules"] = [EMBEDDINGS[arch]]
        kw["token_indices"] = sorted(
            set(tok("a small large circle square triangle", add_special_tokens=False)["input_ids"])
        )
    return cls(**kw)


@pytest.mark.parametrize("arch", ["llama", "bert"])
@pytest.mark.parametrize("kind", list(PeftType), ids=lambda k: k.name)
def test_every_peft_tuner_compares(arch, kind, zoo_root):
    reason = SKIP.get((arch, kind.name)) or SKIP.get(kind.name)
    if reason:
        pytest.skip(reason)
    base = checks.build(arch, zoo_root)["base"]
    out = zoo_root / f"{arch}-{kind.value.lower()}"
    if not (out / "adapter_config.json").is_file():
        model = get_peft_model(checks.load(base), _config(arch, kind, base))
        gen = torch.Generator().manual_seed(3)
        # Adaption prompts act through a zero-initialised tanh gate: move it visibly.
        scale = 2.0 if kind.name == "ADAPTION_PROMPT" else 0.1
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad and p.is_floating_point():
                    p.add_(scale * torch.randn(p.shape, generator=gen))
        model.save_pretrained(out)
        cfg = json.loads((out / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = str(base)
        (out / "adapter_config.json").write_text(json.dumps(cfg))
    kw = {"num_samples": 16}
    if kind.name in TASK_CONDITIONED:
        with pytest.raises(ValueError, match="--task-id"):
            checks.compare(base, [out], **kw)
        kw["task_id"] = 0
    result = checks.compare(base, [out], **kw)
    assert min(checks.ckas(result, 0)) < 1 - 1e-9, (kind.name, checks.ckas(result, 0))
