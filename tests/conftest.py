import os

# Tests never touch the network: transformers / huggingface_hub read this at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Digests of large files are remembered on disk between runs (checkpoints/hashing.py): the
# suite keeps its own, throw-away cache instead of the user's.
import tempfile

os.environ.setdefault("REPSPACE_CACHE_DIR", tempfile.mkdtemp(prefix="repspace-test-cache-"))

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

# Test models are tiny: one intra-op thread is faster than two fighting over 2 shared cores
# (a tiny BLIP backward took 1.4 s instead of 4 ms under contention).
torch.set_num_threads(1)

# CI machines are slow and shared: no per-example deadline, bounded example counts.
settings.register_profile(
    "repspace", deadline=None, max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "30")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("repspace")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
