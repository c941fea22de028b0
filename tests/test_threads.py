"""Thread choice for train / study / demo: explicit count, then OMP_NUM_THREADS, then one
thread for small bases (read from config.json, nothing loaded), else torch's default."""

import json

import pytest
import torch

from repspace._threads import SMALL_HIDDEN, apply_threads, choose_threads, hidden_size_of
from repspace.checkpoints import resolve_spec


@pytest.fixture
def no_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def _folder(tmp_path, **config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_embedded_model_gets_one_thread(no_omp):
    assert hidden_size_of(resolve_spec("embedded")) <= SMALL_HIDDEN
    assert choose_threads(resolve_spec("embedded")) == 1


def test_large_nested_config_keeps_torch_default(no_omp, tmp_path):
    folder = _folder(
        tmp_path,
        model_type="llava",
        text_config={"hidden_size": 4096},
        vision_config={"hidden_size": 1024},
    )
    assert hidden_size_of(folder) == 4096
    assert choose_threads(folder) is None
    assert choose_threads(tmp_path / "missing") is None  # cannot tell: leave torch alone


def test_explicit_count_and_environment_win(monkeypatch, tmp_path):
    small = _folder(tmp_path, d_model=32)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads(small) is None  # the user chose through the environment
    assert choose_threads(small, 3) == 3
    before = torch.get_num_threads()
    try:
        assert apply_threads(small, 1) == 1
    finally:
        torch.set_num_threads(before)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="--threads must be a positive integer"):
            choose_threads(small, bad)
