"""Canonical names, selection syntax, presets and selection errors."""

import copy
import re

import peft
import pytest
import torch
from torch import nn

from repspace.capture import (
    LayerCapture,
    capture_paired,
    layer_names,
    resolve_layers,
    resolve_paired_layers,
    resolve_preset,
)


def test_presets_per_architecture(bert, gpt2, vit, blip_caption, blip_vqa):
    assert resolve_layers(bert, "blocks") == ["encoder.layer.0", "encoder.layer.1"]
    assert resolve_layers(bert, "embeddings") == ["embeddings"]
    assert resolve_layers(gpt2, "blocks") == ["transformer.h.0", "transformer.h.1"]
    # GPT-2 adds wte + wpe inline: the embedding state is the first block's input.
    assert resolve_layers(gpt2, "embeddings") == ["transformer.h.0:input"]
    assert (
        resolve_layers(vit, "vision") == resolve_layers(vit, "blocks") == ["layers.0", "layers.1"]
    )
    assert resolve_preset(vit, "text") == []
    assert resolve_layers(blip_caption, "vision") == [
        "vision_model.encoder.layers.0",
        "vision_model.encoder.layers.1",
    ]
    assert resolve_layers(blip_caption, "text") == [
        "text_decoder.bert.encoder.layer.0",
        "text_decoder.bert.encoder.layer.1",
    ]
    assert resolve_layers(blip_caption, "embeddings") == [
        "vision_model.embeddings",
        "text_decoder.bert.embeddings",
    ]
    assert resolve_layers(blip_vqa, "text") == [
        "text_encoder.encoder.layer.0",
        "text_encoder.encoder.layer.1",
        "text_decoder.bert.encoder.layer.0",
        "text_decoder.bert.encoder.layer.1",
    ]


def test_glob_regex_exact(blip_caption, bert):
    # '*' spans dots but only the outermost matches are kept: blocks, not sub-modules.
    assert resolve_layers(blip_caption, "text_decoder.*.layer.*") == [
        "text_decoder.bert.encoder.layer.0",
        "text_decoder.bert.encoder.layer.1",
    ]
    assert resolve_layers(bert, "re:encoder\\.layer\\.\\d+") == [
        "encoder.layer.0",
        "encoder.layer.1",
    ]
    assert resolve_layers(bert, re.compile(r".*\.query")) == [
        "encoder.layer.0.attention.self.query",
        "encoder.layer.1.attention.self.query",
    ]
    # Union, deduplicated, in model order whatever the order given.
    assert resolve_layers(bert, ["encoder.layer.1", "embeddings", "blocks"]) == [
        "embeddings",
        "encoder.layer.0",
        "encoder.layer.1",
    ]


def _peft_variants(bert, gpt2):
    yield (
        bert,
        peft.get_peft_model(
            copy.deepcopy(bert), peft.LoraConfig(target_modules=["query", "value"], r=2)
        ),
    )
    yield (
        gpt2,
        peft.get_peft_model(
            copy.deepcopy(gpt2),
            peft.IA3Config(
                task_type="CAUSAL_LM",
                target_modules=["c_attn", "mlp.c_proj"],
                feedforward_modules=["mlp.c_proj"],
            ),
        ),
    )
    yield (
        gpt2,
        peft.get_peft_model(
            copy.deepcopy(gpt2),
            peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
        ),
    )
    yield (
        gpt2,
        peft.get_peft_model(
            copy.deepcopy(gpt2),
            peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
        ),
    )
    yield (
        gpt2,
        peft.get_peft_model(
            copy.deepcopy(gpt2),
            peft.LoraConfig(
                task_type="CAUSAL_LM", target_modules=["c_attn"], r=2, fan_in_fan_out=True
            ),
        ),
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_peft_names_match_base(bert, gpt2):
    for base, tuned in _peft_variants(bert, gpt2):
        assert layer_names(tuned) == layer_names(base), type(tuned.peft_config["default"]).__name__
        assert resolve_layers(tuned, "blocks") == resolve_layers(base, "blocks")
        assert not any("base_layer" in n or "lora_" in n for n in layer_names(tuned))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_peft_names_match_multimodal(blip_caption, vit):
    for base, cfg in [
        (blip_caption, peft.LoraConfig(target_modules=["qkv", "query", "value"], r=2)),
        (blip_caption, peft.IA3Config(target_modules=["qkv", "fc2"], feedforward_modules=["fc2"])),
        (vit, peft.LoraConfig(target_modules=["q_proj", "v_proj"], r=2)),
    ]:
        tuned = peft.get_peft_model(copy.deepcopy(base), cfg)
        assert layer_names(tuned) == layer_names(base)
        for preset in ("blocks", "vision", "text", "embeddings"):
            assert resolve_preset(tuned, preset) == resolve_preset(base, preset)


class AdaLinkEmbedding(nn.Module):
    """An AdaLink-style adapter: wraps the embedding and adds a low-rank residual MLP."""

    def __init__(self, base_layer, d=32, r=4):
        super().__init__()
        self.base_layer = base_layer
        self.adalink = nn.Sequential(nn.Linear(d, r), nn.Linear(r, d))
        nn.init.normal_(self.adalink[1].weight, std=1.0)

    def forward(self, x):
        h = self.base_layer(x)
        return h + self.adalink(h)


class BlockAdapter(nn.Module):
    """A Houlsby-style bottleneck added as a sub-module of an existing block."""

    def __init__(self, block):
        super().__init__()
        self.base_layer = block
        self.adapter = nn.Sequential(nn.Linear(32, 4), nn.ReLU(), nn.Linear(4, 32))
        nn.init.normal_(self.adapter[2].weight, std=1.0)

    def forward(self, hidden_states, *args, **kwargs):
        out = self.base_layer(hidden_states, *args, **kwargs)
        h = out[0] if isinstance(out, tuple) else out
        h = h + self.adapter(h)
        return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h


def test_adalink_and_adapters_do_not_shift_names(bert, text, monkeypatch):
    import repspace.layer_table as layer_table

    # hand-written adapters declare the sub-module names they insert, as repspace's own
    # methods do through MethodFacts.hidden_modules (docs/methods.md)
    monkeypatch.setattr(layer_table, "_ADAPTER_PARTS", set(layer_table._ADAPTER_PARTS))
    layer_table.register_adapter_component("adalink")
    layer_table.register_adapter_component("adapter")
    tuned = copy.deepcopy(bert)
    tuned.embeddings.word_embeddings = AdaLinkEmbedding(tuned.embeddings.word_embeddings)
    tuned.encoder.layer[0] = BlockAdapter(tuned.encoder.layer[0])
    assert layer_names(tuned) == layer_names(bert)
    assert resolve_preset(tuned, "blocks") == ["encoder.layer.0", "encoder.layer.1"]
    names = ["embeddings.word_embeddings", "encoder.layer.0"]
    with LayerCapture(bert, names) as cb, LayerCapture(tuned, names) as ct:
        b, t = cb.forward(text), ct.forward(text)
    # The hook sits on the wrapper, so the adapter's contribution is in the states.
    for n in names:
        assert b[n].shape == t[n].shape and not torch.allclose(b[n], t[n])


def test_no_match_lists_closest_names(bert):
    with pytest.raises(ValueError, match=r"'encoder\.layers\.\*'.*closest names.*encoder\.layer"):
        resolve_layers(bert, "encoder.layers.*")
    with pytest.raises(ValueError, match="closest names"):
        resolve_layers(bert, "encoder.layr.0")
    with pytest.raises(ValueError, match="preset 'vision' found no such layers"):
        resolve_layers(bert, "vision")
    with pytest.raises(ValueError, match="layers must be"):
        resolve_layers(bert, 3)
    with pytest.raises(ValueError, match="regex"):
        resolve_layers(bert, "re:(")


def test_match_in_base_not_tuned_names_both(bert, text):
    import transformers

    cfg = copy.deepcopy(bert.config)
    cfg.num_hidden_layers = 1
    shallow = transformers.BertModel(cfg).eval()
    with pytest.raises(
        ValueError, match=r"base model \(BertModel\) but not in the tuned model \(BertModel\)"
    ):
        resolve_paired_layers(bert, shallow, "encoder.layer.1")
    with pytest.raises(ValueError, match="only in base"):
        capture_paired(bert, shallow, text, "blocks", progress=False)


def test_repspace_methods_declare_the_names_they_hide():
    """The built-in families register their inserted sub-module names when they load."""
    import repspace.layer_table as layer_table
    from repspace.methods import method_facts

    facts = method_facts()
    assert facts["adapter"].hidden_modules and facts["adalink"].hidden_modules
    for f in facts.values():
        for name in f.hidden_modules:
            assert name in layer_table._ADAPTER_PARTS
