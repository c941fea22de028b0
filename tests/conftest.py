import os

# Tests never touch the network: transformers / huggingface_hub read this at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Digests of large files are remembered on disk between runs (checkpoints/hashing.py): the
# suite keeps its own, throw-away cache instead of the user's.
import tempfile
from pathlib import Path

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
    "repspace",
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "30")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("repspace")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# -- The quick check: `python -m pytest -m "not slow" -q` (docs/development.md) --------------
# Test folders and modules marked `slow` here, by path relative to tests/ (a folder ends in
# "/").  Measured with `python -m pytest <folders> --durations=0 --durations-min=0` on the
# 2-core machine (2026-11-26, load average 5-7): each entry's tests together take seconds
# (a folder: a minute or more), or run commands end to end (train, study, the README
# walkthrough).  What stays quick covers metrics and statistics, settings and constraints,
# the layering, CLI parsing and errors, checkpoints, data and probes, and one tiny compare end to
# end (test_quick_compare.py), in under a minute.  A new test module is quick until it is
# listed; list one that takes
# more than a second or two.  CI runs everything (.ci/run).
SLOW = frozenset(
    {
        # whole folders: training runs, studies, architecture zoos, hostile inputs end to end
        "training/",
        "study/",
        "compat/",
        "hostile/",
        "distributed/",
        "track/",
        "notebooks/",
        "methods/",
        "docs/",
        "compare/",
        "capture/",
        "report/",
        # modules of otherwise quick folders
        "metrics/test_jackknife.py",
        "metrics/test_routes.py",
        "metrics/test_bootstrap.py",
        "models/test_pretrain.py",
    }
)
# Quick modules inside SLOW folders: CLI parsing and the settings vocabulary.
QUICK = frozenset({"capture/test_cli.py", "compare/test_compare_options.py"})
_TESTS = Path(__file__).resolve().parent


def _slow(path) -> bool:
    try:
        rel = Path(path).resolve().relative_to(_TESTS).as_posix()
    except ValueError:
        return False
    if rel in QUICK or any(q.startswith(rel + "/") for q in QUICK):
        return False
    return any(rel == s or rel.startswith(s) or (rel + "/") == s for s in SLOW)


def pytest_ignore_collect(collection_path, config):
    # `-m "not slow"` deselects every test under a SLOW path: not importing those modules at
    # all saves the quick check their collection (torch models, peft, fixtures).
    if config.getoption("markexpr", "").replace(" ", "") == "notslow" and _slow(collection_path):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _slow(item.path):
            item.add_marker(pytest.mark.slow)
