"""`repspace compare` end to end: numbers, files, and every failure mode as one line."""

import csv
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from repspace.cli import main
from tests.compare.conftest import tiny_bert

FAST = ["--embedding", "pca", "--quiet", "--sample-rows", "64"]


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_base_against_itself_is_identical_everywhere(base_dir, probe_file, tmp_path, capsys):
    out = tmp_path / "self"
    with pytest.warns(UserWarning, match="adapter is probably not active"):
        rc, stdout, _ = run_cli(
            capsys, "compare", base_dir, base_dir, "--probe", probe_file, "-o", out, *FAST
        )
    assert rc == 0, stdout
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["layers"]) == 3
    for row in rep["results"]:
        m = row["metrics"]
        assert m["linear_cka"] == pytest.approx(1.0, abs=1e-9)
        assert m["linear_cka_debiased"] == pytest.approx(1.0, abs=1e-9)
        assert m["frechet_distance"] == pytest.approx(0.0, abs=1e-9)
        assert m["mmd_linear"] == pytest.approx(0.0, abs=1e-12)
        assert m["mmd_rbf"] == pytest.approx(0.0, abs=1e-12)
        assert m["procrustes_distance"] == pytest.approx(0.0, abs=1e-9)
        assert m["cosine_similarity_mean"] == pytest.approx(1.0, abs=1e-12)
        assert m["relative_shift_mean"] == 0.0
        assert m["rbf_cka"] == pytest.approx(1.0, abs=1e-9)
        assert m["mutual_knn_overlap"] == 1.0
        assert m["effective_rank_base"] == m["effective_rank_tuned"]


def test_lora_moves_the_representation_and_report_is_complete(
    base_dir, lora_dir, probe_file, tmp_path, capsys
):
    out = tmp_path / "report"
    rc, stdout, err = run_cli(
        capsys, "compare", base_dir, lora_dir, "--probe", probe_file, "-o", out, *FAST
    )
    assert rc == 0, err
    assert "lora-r4" in stdout and "report.html" in stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["schema_version"] == 1 and rep["inputs"]["tuned"][0]["kind"] == "peft"
    assert rep["inputs"]["probe"]["num_samples"] == 72 and rep["inputs"]["probe"]["sha256"]
    assert rep["inputs"]["base"]["sha256"] and rep["packages"]["peft"]
    ckas = [r["metrics"]["linear_cka"] for r in rep["results"]]
    assert min(ckas) < 0.999 and all(0 < c <= 1 + 1e-9 for c in ckas)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {r["metric"] for r in rows} >= {
        "linear_cka",
        "linear_cka_debiased",
        "effective_rank_tuned",
        "frechet_distance",
        "mmd_linear",
        "rbf_cka",
    }
    for plot in ("cka", "effective_rank", "spectra", "drift", "embedding", "heatmap"):
        assert (out / "plots" / f"{plot}.pdf").read_bytes().startswith(b"%PDF")
        assert (out / "plots" / f"{plot}.png").read_bytes().startswith(b"\x89PNG")
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "lora-r4" in (out / "report.md").read_text()


def test_json_output_and_metric_selection(base_dir, lora_dir, probe_file, capsys):
    rc, stdout, _ = run_cli(
        capsys,
        "compare",
        base_dir,
        lora_dir,
        "--probe",
        probe_file,
        "--no-report",
        "--json",
        "--metrics",
        "linear_cka,effective_rank",
        *FAST,
    )
    assert rc == 0
    payload = json.loads(stdout)
    keys = set(payload["results"][0]["metrics"])
    assert keys == {
        "linear_cka",
        "linear_cka_debiased",
        "effective_rank_base",
        "effective_rank_tuned",
    }
    assert payload["output"] is None


def _assert_clean_failure(capsys, out, *args, match):
    rc, stdout, err = run_cli(capsys, "compare", *args, "-o", out, *FAST)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("repspace compare: error:"), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def test_malicious_checkpoint_is_refused_and_does_not_run(base_dir, probe_file, tmp_path, capsys):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "pwned"))

    evil = tmp_path / "tuned.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    _assert_clean_failure(
        capsys, tmp_path / "out", base_dir, evil, "--probe", probe_file, match="refused"
    )
    assert not marker.exists()


def test_bad_checkpoints_fail_in_one_line_without_output(base_dir, probe_file, tmp_path, capsys):
    good = {k: v.contiguous() for k, v in tiny_bert(seed=3).state_dict().items()}
    save_file(good, tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 3])
    _assert_clean_failure(
        capsys,
        tmp_path / "o1",
        base_dir,
        tmp_path / "cut.safetensors",
        "--probe",
        probe_file,
        match="truncated or corrupt",
    )
    save_file(
        {k: v.contiguous() for k, v in tiny_bert(hidden=16).state_dict().items()},
        tmp_path / "small.safetensors",
    )
    _assert_clean_failure(
        capsys,
        tmp_path / "o2",
        base_dir,
        tmp_path / "small.safetensors",
        "--probe",
        probe_file,
        match="wrong shape for BertModel",
    )
    adapter = tmp_path / "orphan"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "base_model_name_or_path": str(tmp_path / "deleted-base"),
                "r": 2,
                "target_modules": ["query"],
            }
        )
    )
    _assert_clean_failure(
        capsys,
        tmp_path / "o3",
        base_dir,
        adapter,
        "--probe",
        probe_file,
        match="adapter folder without weights",
    )
    save_file({"x": torch.zeros(1)}, adapter / "adapter_model.safetensors")
    _assert_clean_failure(
        capsys,
        tmp_path / "o3b",
        adapter,
        base_dir,
        "--probe",
        probe_file,
        match="does not exist on this machine",
    )
    _assert_clean_failure(
        capsys,
        tmp_path / "o4",
        base_dir,
        tmp_path / "nope",
        "--probe",
        probe_file,
        match="no such file",
    )
    _assert_clean_failure(
        capsys,
        tmp_path / "o5",
        base_dir,
        base_dir,
        "--layers",
        "decoder.*",
        "--probe",
        probe_file,
        match="decoder",
    )


def test_weights_file_applied_onto_base(base_dir, probe_file, tmp_path, capsys):
    sd = {k: v.contiguous() for k, v in tiny_bert(seed=5).state_dict().items()}
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}}, tmp_path / "ft.ckpt")
    rc, stdout, err = run_cli(
        capsys,
        "compare",
        base_dir,
        tmp_path / "ft.ckpt",
        "--probe",
        probe_file,
        "--no-report",
        "--json",
        *FAST,
    )
    assert rc == 0, err
    res = json.loads(stdout)["results"]
    assert all(r["metrics"]["linear_cka"] < 0.999 for r in res)  # a different random init


def test_existing_output_needs_overwrite(base_dir, lora_dir, probe_file, tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    rc, _, err = run_cli(
        capsys, "compare", base_dir, lora_dir, "--probe", probe_file, "-o", out, *FAST
    )
    # not a repspace report: refused even with --overwrite (it is somebody's folder)
    assert rc == 2 and "not a repspace report" in err and (out / "notes.txt").exists()


def test_tuned_per_pass_gives_the_same_numbers(base_dir, lora_dir, probe_file, tmp_path, capsys):
    """Two tuned checkpoints in one pass vs one per pass: identical JSON metrics."""
    args = [
        "compare",
        base_dir,
        lora_dir,
        lora_dir,
        "--probe",
        probe_file,
        "--no-report",
        "--json",
        "--metrics",
        "linear_cka,effective_rank",
        *FAST,
    ]
    rc1, one_pass, _ = run_cli(capsys, *args)
    rc2, two_passes, _ = run_cli(capsys, *args, "--tuned-per-pass", "1")
    assert rc1 == rc2 == 0
    a, b = json.loads(one_pass)["results"], json.loads(two_passes)["results"]
    assert len(a) == len(b) == 6 and [r["metrics"] for r in a] == [
        r["metrics"] for r in b
    ]  # 2 x 3 layers
    out = tmp_path / "never"
    _assert_clean_failure(
        capsys,
        out,
        base_dir,
        lora_dir,
        "--probe",
        probe_file,
        "--tuned-per-pass",
        "0",
        match="--tuned-per-pass must be an integer ≥ 1",
    )
