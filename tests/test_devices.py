"""One rule for what a ``device`` argument means (capture, compare, training)."""

import pytest
import torch

from repspace.devices import resolve_device


def test_auto_and_none_pick_the_best_available():
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert resolve_device("auto").type == resolve_device(None).type == expected


def test_explicit_devices_are_checked_and_the_argument_is_named():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="^TrainConfig.device 'gpu0' is not a torch device"):
        resolve_device("gpu0", "TrainConfig.device")
    if not torch.cuda.is_available():
        with pytest.raises(
            ValueError, match="--device 'cuda:1' requested but CUDA is not available"
        ):
            resolve_device("cuda:1", "--device")


def test_training_uses_the_same_rule(monkeypatch):
    import repspace.training.api as api

    assert api.resolve_device is resolve_device
