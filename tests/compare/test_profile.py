"""`repspace compare --profile`: every stage timed, stages add up to no more than the total,
and nothing is collected (or printed) without the flag."""

import re

from repspace import _profile
from repspace.cli import main


def test_profile_breaks_down_the_wall_time(base_dir, lora_dir, probe_file, capsys):
    args = [
        str(base_dir),
        str(lora_dir),
        "--probe",
        str(probe_file),
        "--no-report",
        "--metrics",
        "linear_cka",
        "--embedding",
        "none",
        "--quiet",
    ]
    assert main(["compare", *args, "--profile"]) == 0
    err = capsys.readouterr().err
    seconds = dict(re.findall(r"^  (\w+)\s+([0-9.]+) s", err, flags=re.M))
    assert set(seconds) == {*_profile.STAGES, "other", "total"}
    stages = sum(float(seconds[s]) for s in _profile.STAGES)
    assert 0 < stages <= float(seconds["total"]) + 1e-3
    assert float(seconds["forward"]) > 0 and float(seconds["load"]) > 0
    assert main(["compare", *args]) == 0
    assert "profile" not in capsys.readouterr().err
    assert _profile._active is None


def test_stages_outside_a_profile_are_free():
    with _profile.stage("forward"):
        pass
    assert list(_profile.timed_iter([1, 2])) == [1, 2]
    with _profile.profiling() as p:
        with _profile.stage("forward"):
            pass
        assert list(_profile.timed_iter(iter([3]))) == [3]
        _profile.add_time("metrics", 0.5)
    assert p.seconds["metrics"] == 0.5 and p.seconds["forward"] >= 0 and p.end is not None
