"""The model view (issue 30 item 4): each model's structure is resolved once per compare."""

from collections import Counter

import pytest
import torch

import repspace.capture.model_view as mv
from repspace.capture.model_view import model_view, views_resolved_once
from repspace.capture.tokens import num_virtual_tokens

from .conftest import tiny_bert


@pytest.fixture
def builds(monkeypatch):
    """Counts :func:`build_view` calls by model object (``id``)."""
    seen: Counter = Counter()
    real = mv.build_view

    def counting(model):
        seen[id(model)] += 1
        return real(model)

    monkeypatch.setattr(mv, "build_view", counting)
    return seen


@pytest.mark.parametrize("two_models", [False, True])
def test_a_compare_builds_each_models_view_once(builds, base_dir, lora_dir, probe_file, two_models):
    from repspace.compare import compare

    res = compare(
        str(base_dir),
        [str(lora_dir)],
        probe=str(probe_file),
        num_samples=16,
        batch_size=8,
        two_models=two_models,
        adapter_effect=True,
    )
    assert builds, "the compare never asked for a model view"
    assert max(builds.values()) == 1, dict(builds)
    # one model (the adapter's, base read disabled) or two: one view each
    assert len(builds) == (2 if two_models else 1)
    cka = res.metrics[res.tuned_names[0]]
    assert all(0.0 < v["linear_cka"] <= 1.0 + 1e-6 for v in cka.values())


def test_outside_a_scope_each_call_resolves_afresh(builds):
    model = tiny_bert()
    model_view(model)
    model_view(model)
    assert builds[id(model)] == 2
    with views_resolved_once():
        first = model_view(model)
        with views_resolved_once():  # a nested scope shares the outer cache
            assert model_view(model) is first
    assert builds[id(model)] == 3


def test_the_view_matches_what_it_replaced(lora_dir, base_dir):
    from peft import PeftModel
    from transformers import AutoModel

    from repspace.capture.presets import block_lists
    from repspace.layer_table import canonical_modules, unwrap_model

    model = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), lora_dir)
    view = model_view(model)
    assert view.root is unwrap_model(model)
    assert dict(view.modules) == canonical_modules(model)
    assert block_lists(model) == [("encoder.layer", [f"encoder.layer.{i}" for i in range(3)])]
    assert view.image_token is None and view.virtual_tokens == 0
    with pytest.raises(TypeError):  # the table is shared: read-only
        view.modules["x"] = torch.nn.Linear(1, 1)


def test_virtual_tokens_follow_the_adapter_switch(base_dir, monkeypatch):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModel

    model = get_peft_model(
        AutoModel.from_pretrained(base_dir),
        PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=3),
    )
    with views_resolved_once():
        assert num_virtual_tokens(model) == 3
        # what disable_adapter() turns off (peft's own context fails on a bare BertModel,
        # which has no prepare_inputs_for_generation to swap)
        with monkeypatch.context() as m:
            m.setattr(type(model), "has_active_enabled_adapter", property(lambda self: False))
            assert num_virtual_tokens(model) == 0  # the cached view's count is the enabled one
        assert num_virtual_tokens(model) == 3
