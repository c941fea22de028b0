"""`torchrun --nproc-per-node 2 -m repspace compare` equals one process; failures write nothing.

Both runs use one thread per process (torchrun's default), so the forward passes are
bit-identical and any difference comes from the distributed reduction alone.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.distributed.conftest import free_port

VENV_BIN = Path(sys.executable).parent
# Metrics built from the tail of the spectrum (√ of eigenvalues near the resolution
# limit, top-k eigenvectors): they move by ~1e-9 under any change of summation order,
# e.g. one process merging two halves of the same rows (docs/scaling.md).
SPECTRUM_TAIL = {"effective_rank_base", "effective_rank_tuned", "subspace_overlap"}


def run(args, nproc, out, **env):
    cmd = (
        [
            str(VENV_BIN / "torchrun"),
            "--nproc-per-node",
            str(nproc),
            "--master-port",
            str(free_port()),
            "-m",
            "repspace",
        ]
        if nproc > 1
        else [sys.executable, "-m", "repspace"]
    )
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **env}
    return subprocess.run(
        [*cmd, "compare", *args, "-o", str(out), "--quiet"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def args(base_dir, lora_dir, probe_file):
    return [
        str(base_dir),
        str(lora_dir),
        "--probe",
        str(probe_file),
        "--batch-size",
        "8",
        "--embedding",
        "pca",
        "--sample-rows",
        "50",
    ]


def test_two_gloo_processes_give_the_single_process_report(args, tmp_path):
    one, two = run(args, 1, tmp_path / "one"), run(args, 2, tmp_path / "two")
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a = json.loads((tmp_path / "one" / "report.json").read_text())
    b = json.loads((tmp_path / "two" / "report.json").read_text())
    assert b["settings"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert a["inputs"]["probe"] == b["inputs"]["probe"]
    assert len(a["results"]) == len(b["results"]) == 3
    for ra, rb in zip(a["results"], b["results"]):
        assert (ra["checkpoint"], ra["layer"]) == (rb["checkpoint"], rb["layer"])
        assert set(ra["metrics"]) == set(rb["metrics"])
        for k, v in ra["metrics"].items():
            tol = 1e-8 if k in SPECTRUM_TAIL else 1e-10
            assert rb["metrics"][k] == pytest.approx(v, rel=tol), (ra["layer"], k)
        for k in ("rbf_cka", "mmd_rbf", "mutual_knn_overlap", "cosine_similarity_q50"):
            assert rb["metrics"][k] == ra["metrics"][k]  # same row sample / histograms: equal
    for name in a["spectra"]:
        for layer, sv in a["spectra"][name].items():
            # values below the resolution σ₁·√(p·ε) are rounding noise: compare above it
            np.testing.assert_allclose(b["spectra"][name][layer], sv, rtol=1e-8, atol=1e-6 * sv[0])


def test_failure_on_rank_0_stops_every_rank_and_writes_nothing(args, tmp_path):
    res = run([*args, "--embedding-layer", "nope"], 2, tmp_path / "out")
    assert res.returncode != 0
    # one clear line from each rank (the two ranks share stderr, so lines may interleave)
    # (an unknown layer is now caught before the capture, on every rank: the lowest one reports)
    message = (
        "repspace compare: error: rank 0 failed during capture of lora-r4: "
        "--embedding-layer: 'nope' not among the captured layers"
    )
    assert res.stderr.count(message) == 2, res.stderr[-3000:]
    assert res.stderr.count("repspace compare: error:") == 2
    assert not (tmp_path / "out").exists()
