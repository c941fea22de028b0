"""The study configs committed in studies/ (the reproduction commands of docs/reproduction.md)
parse and validate, and plan their grid (every TrainConfig builds), without training."""

from pathlib import Path

import pytest

from repspace.study import load_study_config
from repspace.study.runner import plan_study

STUDIES = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_committed_study_configs_plan(path, tmp_path):
    config = load_study_config(path)
    planned = plan_study(config.replace(base="embedded"), tmp_path)
    assert planned and all(p.train_config is not None for p in planned if not p.cell.is_base)


def test_the_minilm_study_is_the_documented_design():
    config = load_study_config(Path(__file__).resolve().parents[2] / "studies" / "minilm.toml")
    assert config.tasks == ("classify",) and len(config.seeds) == 3
    assert set(config.trained_methods) == {
        "full",
        "lora",
        "adapter",
        "prefix",
        "prompt",
        "ia3",
        "adalink",
        "pt_lora",
        "pt_adapter",
    }
    assert config.compare.probes == ("builtin", "general")
