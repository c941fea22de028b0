"""Issue 17: --name labels, `repspace compare ADAPTER` alone, base and tuned swapped."""

import json

import pytest

from repspace.cli import main

FAST = ["--embedding", "pca", "--quiet", "--sample-rows", "64", "--num-samples", "16"]


def test_adapter_alone_uses_its_recorded_base_and_names_apply(
    base_dir, lora_dir, probe_file, tmp_path, capsys
):
    out = tmp_path / "r"
    rc = main(
        [
            "compare",
            str(lora_dir),
            "--probe",
            str(probe_file),
            "-o",
            str(out),
            "--name",
            "base=TinyBERT",
            "--name",
            "tuned1=LoRA-r4",
            *FAST,
        ]
    )
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert rep["inputs"]["base"]["name"] == "TinyBERT"
    assert rep["inputs"]["base"]["spec"] == str(base_dir)
    assert [t["name"] for t in rep["inputs"]["tuned"]] == ["LoRA-r4"]
    assert {r["checkpoint"] for r in rep["results"]} == {"LoRA-r4"}
    assert "TinyBERT" in rep["spectra"] and "LoRA-r4" in rep["spectra"]
    html = (out / "report.html").read_text()
    assert "TinyBERT" in html and "LoRA-r4" in html


@pytest.mark.parametrize(
    "names, message",
    [
        (["tuned2=x"], "tuned1..tuned1"),
        (["nothing"], "WHICH=LABEL"),
        (["foo=x"], "neither base, tunedN"),
        (["base=a", "tuned1=a"], "given to two checkpoints"),
        (["base=a", "base=b"], "named twice"),
    ],
)
def test_bad_names_fail_in_one_line_before_loading(
    base_dir, lora_dir, tmp_path, capsys, names, message
):
    args = ["compare", str(base_dir), str(lora_dir), "-o", str(tmp_path / "r")]
    for n in names:
        args += ["--name", n]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_a_single_plain_model_is_a_one_line_error(base_dir, tmp_path, capsys):
    assert main(["compare", str(base_dir), "-o", str(tmp_path / "r")]) != 0
    assert "give BASE TUNED" in capsys.readouterr().err


def test_swapped_base_and_tuned_is_warned_and_recorded(
    base_dir, lora_dir, probe_file, tmp_path, capsys
):
    out = tmp_path / "swap"
    with pytest.warns(UserWarning, match="swapped"):
        rc = main(
            [
                "compare",
                str(lora_dir),
                str(base_dir),
                "--probe",
                str(probe_file),
                "-o",
                str(out),
                *FAST,
            ]
        )
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert any("swapped" in w for w in rep["warnings"])
    assert "swapped" in (out / "report.html").read_text()
