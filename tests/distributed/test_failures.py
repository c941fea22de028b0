"""A rank that fails mid-capture: every rank gets one clear error, none returns a result."""

import json


from tests.distributed import workers
from tests.distributed.conftest import launch


def outcomes(tmp_path, mode):
    codes = launch(workers.failure_worker, 2, str(tmp_path), mode)
    got = {
        r: json.loads((tmp_path / f"fail{r}.json").read_text())
        for r in range(2)
        if (tmp_path / f"fail{r}.json").exists()
    }
    return codes, got


def test_raised_error_on_one_rank_reaches_every_rank(tmp_path):
    codes, got = outcomes(tmp_path, "raise")
    assert codes == [0, 0] and set(got) == {0, 1}
    for r in (0, 1):
        assert got[r]["type"] == "RankFailedError"
        assert got[r]["error"] == (
            "rank 1 failed during capture of other: probe shard unreadable: disk quota exceeded"
        )


def test_rank_that_dies_gives_an_error_on_the_survivor(tmp_path):
    codes, got = outcomes(tmp_path, "exit")
    assert codes[1] == 7 and set(got) == {0}  # rank 1 died without a word
    err = got[0]["error"]
    assert got[0]["type"] == "RankFailedError", err
    assert err.startswith("rank 0: lost contact with the other ranks during capture of other"), err
    assert "\n" not in err
