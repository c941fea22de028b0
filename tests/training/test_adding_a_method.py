"""Adding a method touches its own folder and nothing else (docs/methods.md, "Adding a method").

A toy method lives in a folder outside the repository, appended to the methods package's
search path the way a new ``repspace/methods/<family>/`` folder would be found.  Without
any edit elsewhere it is listed, builds, keeps the layer names, trains with its own
default learning rate, gets its own colour and marker in figures, saves and reloads as a
run folder, and `compare` measures it.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import repspace.layer_table as layer_table
import repspace.methods as methods_pkg
from repspace.methods import base as registry

TOY = textwrap.dedent('''
    """Toy scaling: a learned per-channel scale on every feed-forward output (test only)."""
    from dataclasses import dataclass

    import torch
    from torch import nn

    from repspace.methods.architectures import site_modules
    from repspace.methods.base import MethodConfig, MethodFacts, register_method


    class ToyScale(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.log_scale = nn.Parameter(torch.zeros(d))


    def _hook(module, args, output):
        return output * module.toy_scale.log_scale.exp()


    @dataclass
    class ToyConfig(MethodConfig):
        method = "toy_scale"


    def apply_toy(model, config, arch, stage):
        for name, module in site_modules(model, arch, ("ffn_out",), arch.towers(), "toy_scale"):
            module.toy_scale = ToyScale(module.weight.shape[0]).to(module.weight.dtype)
            module.register_forward_hook(_hook)
        return model


    register_method("toy_scale", ToyConfig, apply_toy, "toy: a learned scale per FFN channel",
                    facts=MethodFacts(default_lr=2e-2, color="#123456", marker="s",
                                      hidden_modules=("toy_scale",), order=5))
''')


@pytest.fixture()
def toy_method(tmp_path, monkeypatch):
    folder = tmp_path / "plugins" / "toy_scale"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(TOY)
    monkeypatch.setattr(methods_pkg, "__path__", [*methods_pkg.__path__, str(tmp_path / "plugins")])
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(layer_table, "_ADAPTER_PARTS", set(layer_table._ADAPTER_PARTS))
    yield "toy_scale"
    sys.modules.pop("repspace.methods.toy_scale", None)


def test_a_new_folder_is_a_new_method(toy_method):
    from repspace.methods import available_methods, get_method, make_config
    from repspace.report.style import color_for, marker_for, styles_for
    from repspace.training import DEFAULT_LR, TrainConfig

    assert available_methods()[:2] == ["full", toy_method]  # listed by its declared order
    assert get_method(toy_method).facts.hidden_modules == ("toy_scale",)
    assert TrainConfig(method=toy_method).resolved_lr() == 2e-2 == DEFAULT_LR[toy_method]
    assert color_for("run-toy_scale-seed0") == "#123456" and marker_for("toy-scale") == "s"
    assert styles_for(["lora", "toy_scale"])["toy_scale"]["color"] == "#123456"
    assert make_config(toy_method).to_dict()["method"] == toy_method


def test_the_new_method_trains_saves_reloads_and_is_measured(toy_method, tiny_base, tmp_path):
    import json

    from repspace.capture import layer_names
    from repspace.checkpoints import load_checkpoint
    from repspace.cli import main
    from repspace.training import train

    from tests.training.conftest import small_config

    base = tiny_base("blip")
    result = train(
        small_config(base, tmp_path, method=toy_method, task="captioning", lr=None, steps=4)
    )
    assert result.finished and result.config.resolved_lr() == 2e-2
    trained = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trained and all(n.endswith("toy_scale.log_scale") for n in trained)
    tuned = load_checkpoint(str(result.run_dir))
    assert layer_names(tuned.model) == layer_names(load_checkpoint(base).model)  # hidden
    reloaded = dict(tuned.model.named_parameters())
    for n, p in result.model.named_parameters():
        if n in trained:
            torch.testing.assert_close(reloaded[n].detach(), p.detach().cpu(), rtol=0, atol=0)
    out = tmp_path / "report"
    assert (
        main(
            [
                "compare",
                base,
                str(result.run_dir),
                "-o",
                str(out),
                "--metrics",
                "linear_cka",
                "--num-samples",
                "16",
                "--embedding",
                "none",
                "--quiet",
            ]
        )
        == 0
    )
    rows = json.loads((out / "report.json").read_text())["results"]
    text = [r["metrics"]["linear_cka"] for r in rows if r["layer"].startswith("text_")]
    assert text and min(text) < 1.0 - 1e-9  # the learned scales moved the representation
