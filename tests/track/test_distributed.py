"""Two gloo processes give the single-process numbers: the plain Tracker (each rank captures
its contiguous block of probe batches, the statistics are all-reduced exactly) and the
callback under Trainer + DDP (its last values == one process measuring the final weights)."""

import json

import pytest
import torch

from tests.distributed.conftest import launch
from tests.track.workers import METRICS, plain_values, tracker_worker

# built from the tail of the spectrum: ~1e-9 under any change of summation order (scaling.md)
SPECTRUM_TAIL = {"effective_rank_base", "effective_rank_tuned", "effective_rank_ratio"}


def close(a, b):
    for layer, row in b.items():
        for metric, value in row.items():
            tol = 1e-8 if metric in SPECTRUM_TAIL else 1e-10
            assert a[layer][metric] == pytest.approx(value, rel=tol, abs=1e-12), (layer, metric)


def test_two_gloo_ranks_equal_one_process(tiny_dir, probe_txt, tmp_path):
    codes = launch(tracker_worker, 2, str(tmp_path), str(tiny_dir), str(probe_txt), timeout=240)
    errors = "\n".join(p.read_text() for p in tmp_path.glob("rank*.err"))
    assert codes == [0, 0], errors
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["batches"] for r in ranks] == [4, 5]  # 72 samples, batches of 8: 9 batches, sharded
    assert ranks[0]["plain"] == ranks[1]["plain"]  # every rank returns rank 0's values

    one, batches, world = plain_values(tiny_dir, probe_txt)
    assert (batches, world) == (9, 1)
    close(ranks[0]["plain"], one)

    # Trainer + DDP: the callback's last values are those of the final weights, measured by one process
    assert ranks[0]["ddp"] == "DistributedDataParallel" and ranks[0]["logged"] == [0, 1, 2]
    assert ranks[0]["trainer"] == ranks[1]["trainer"]
    from repspace.track import Tracker
    from tests.track.conftest import load_tiny

    model = load_tiny(tiny_dir)
    base = Tracker(model, probe_txt, batch_size=8, metrics=METRICS)
    model.load_state_dict(torch.load(tmp_path / "final.pt"))
    close(ranks[0]["trainer"], base.measure(model, 2))
    assert (
        json.loads((tmp_path / "track" / "trajectory.json").read_text())["settings"]["world_size"]
        == 2
    )
