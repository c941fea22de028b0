"""`repspace weights`: a trained LoRA adapter folder and a full fine-tune saved as a folder,
against the saved base; files, numbers against the adapter's own factors, the figure beside
a compare report, and one-line errors."""

import csv
import json

import torch
from safetensors.torch import load_file

from repspace.cli import main


def run(*args):
    return main([str(a) for a in args])


def _full_finetune(base_dir, out):
    from transformers import BertModel

    model = BertModel.from_pretrained(base_dir, local_files_only=True)
    with torch.no_grad():
        model.encoder.layer[1].output.dense.weight.mul_(1.1)
    model.save_pretrained(out)
    return out


def test_lora_and_full_finetune(base_dir, lora_dir, probe_file, tmp_path, capsys):
    full = _full_finetune(base_dir, tmp_path / "full-ft")
    report = tmp_path / "report"
    assert run("compare", base_dir, lora_dir, full, "--probe", probe_file, "-o", report) == 0
    out = tmp_path / "weights"
    assert (
        run(
            "weights",
            base_dir,
            lora_dir,
            full,
            "-o",
            out,
            "--report",
            report,
            "--top-k",
            3,
            "--probe",
            probe_file,
            "--num-samples",
            12,
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "lora-r4: 6 changed linear maps" in printed and "full-ft: 1 changed linear maps" in printed
    )
    for f in (
        "weights.json",
        "weights.csv",
        "weights.md",
        "weight_vs_representation.pdf",
        "weight_vs_representation.png",
        "adapter_effect.pdf",
        "adapter_effect.png",
    ):
        assert (out / f).is_file(), f
    data = json.loads((out / "weights.json").read_text())
    assert data["schema"] == "repspace.weights" and data["settings"]["k"] == 3
    lora = data["checkpoints"]["lora-r4"]
    # the adapter's own factors: ΔW = B A · alpha / r, rank 4
    state = load_file(lora_dir / "adapter_model.safetensors")
    name = "encoder.layer.0.attention.self.query"
    a = state[f"base_model.model.{name}.lora_A.weight"].double()
    b = state[f"base_model.model.{name}.lora_B.weight"].double()
    dw = b @ a * (16 / 4)
    row = lora["matrices"][name]
    assert row["route"] == "probed" and row["delta_numerical_rank"] == 4
    assert abs(row["delta_norm"] - float(torch.linalg.matrix_norm(dw))) <= 1e-10 * row["delta_norm"]
    assert set(lora["blocks"]) == {f"encoder.layer.{i}" for i in range(3)}
    # where the adapter acts: every adapted module, every probe sample, a positive share
    assert set(lora["adapter_effect"]) == {
        n for n, r in lora["matrices"].items() if r["route"] == "probed"
    }
    assert all(
        e["n"] == 12 and e["n_undefined"] == 0 and 0 < e["min"] <= e["q50"] <= e["max"]
        for e in lora["adapter_effect"].values()
    )
    assert set(lora["adapter_effect_blocks"]) == set(lora["blocks"])
    assert data["checkpoints"]["full-ft"]["adapter_effect"] == {}
    assert "no adapter modules" in data["checkpoints"]["full-ft"]["adapter_effect_note"]
    assert data["settings"]["num_samples"] == 12
    full_rows = data["checkpoints"]["full-ft"]["matrices"]
    assert list(full_rows) == ["encoder.layer.1.output.dense"]
    assert full_rows["encoder.layer.1.output.dense"]["route"] == "weights"
    # ΔW = 0.1 W₀: same singular vectors, no intruders, relative size 0.1
    assert full_rows["encoder.layer.1.output.dense"]["intruder_dimensions"] == 0
    assert abs(full_rows["encoder.layer.1.output.dense"]["relative_delta"] - 0.1) < 1e-6
    with open(out / "weights.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["checkpoint"] for r in rows} == {"lora-r4", "full-ft"}
    assert "intruder dims" in (out / "weights.md").read_text()


def test_errors_are_one_line_and_write_nothing(base_dir, lora_dir, tmp_path, capsys):
    out = tmp_path / "w"
    assert run("weights", base_dir, lora_dir, "-o", out, "--threshold", 0) == 2
    assert run("weights", base_dir, lora_dir, "-o", out, "--report", tmp_path) == 2
    assert run("weights", base_dir, base_dir, "-o", out) == 2  # nothing changed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("repspace weights: error:") for line in err)
    assert (
        "--threshold" in err[0] and "no report.json" in err[1] and "no linear map differs" in err[2]
    )
    assert not out.exists()
    assert (
        run("weights", base_dir, lora_dir, "-o", lora_dir / "inside") == 2
    )  # output inside an input
    assert "that this run reads" in capsys.readouterr().err


def test_log_axes_print_plain_numbers_not_tex_source():
    """PAPER_RC turns mathtext off (names print as written); log axes then need plain
    labels, or they show `$\\mathdefault{10^{2}}$`."""
    import matplotlib.pyplot as plt

    from repspace.report.style import log_axis, paper_style

    with paper_style():
        fig, ax = plt.subplots()
        ax.plot([1, 10, 100], [0.01, 1, 100])
        log_axis(ax, "y")
        log_axis(ax, "x")
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_xticklabels() if t.get_text()]
        plt.close(fig)
    assert labels and not any("$" in t or "mathdefault" in t for t in labels)
    assert "100" in labels and "0.01" in labels
