"""The issue-19 analyses through `repspace compare` and into its report: the numbers in
report.json equal the analyses run directly, and report.html / report.md show each one with
its caption and figure."""

import json

import numpy as np
import pytest

from repspace.cli import main

peft = pytest.importorskip("peft")

FAST = ["--embedding", "none", "--quiet", "--sample-rows", "64", "--num-samples", "48"]


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_one_model_analyses_in_the_report(base_dir, lora_dir, probe_file, tmp_path, capsys):
    out = tmp_path / "rep"
    rc, stdout, _ = run_cli(
        capsys,
        "compare",
        base_dir,
        lora_dir,
        "--probe",
        probe_file,
        "-o",
        out,
        "--segments",
        "--adapter-effect",
        "--merge-dtype",
        "bfloat16",
        "--metrics",
        "linear_cka,linear_cka_null,effective_rank",
        *FAST,
    )
    assert rc == 0, stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["settings"]["base_capture"] == {"mode": "adapter_disabled"}
    a = rep["analyses"]
    assert set(a) == {"segments", "adapter_effect", "merge_fidelity"}
    name = rep["inputs"]["tuned"][0]["name"]
    # the text segment of a text model is the pooled comparison itself
    for row in rep["results"]:
        seg = a["segments"][name][row["layer"]]
        assert set(seg) == {"text"}
        # (the compare path mean-pools float32 states in float32, segments pool in float64)
        assert seg["text"]["linear_cka"] == pytest.approx(row["metrics"]["linear_cka"], rel=1e-6)
        assert 0 < row["metrics"]["linear_cka_null_p"] <= 1
    eff = a["adapter_effect"][name]
    assert len(eff["modules"]) == 6 and len(eff["blocks"]) == 3  # query, value x 3 blocks
    assert all(np.isfinite(m["mean"]) and m["mean"] > 0 for m in eff["modules"].values())
    fid = a["merge_fidelity"][name]["bfloat16"]
    assert 0.9 < fid["summary"]["min_linear_cka"] <= 1
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (
        "Analyses",
        "base capture",
        "one model: the base was run as the adapter",
        "Per segment: image and text tokens",
        "Where the adapter acts",
        "Merge fidelity",
        "permutation null of linear CKA",
    ):
        assert text in html and text in md, text
    assert not (out / "plots" / "analysis_segments.png").exists()  # text only: the CKA figure
    for fig in ("analysis_adapter_effect", "analysis_merge_fidelity"):
        assert (out / "plots" / f"{fig}.png").is_file()
        assert fig in rep["plots"]
    assert "Where the adapter acts: per block" in html  # the figure's own caption


def test_weight_space_and_layer_matching_load_the_base_separately(
    base_dir, lora_dir, probe_file, tmp_path, capsys
):
    from repspace.compare.weights import weight_space
    from transformers import AutoModel

    out = tmp_path / "rep2"
    rc, stdout, _ = run_cli(
        capsys,
        "compare",
        base_dir,
        lora_dir,
        "--probe",
        probe_file,
        "-o",
        out,
        "--weight-space",
        "--match-layers",
        "--name",
        "tuned1=lora",
        "--metrics",
        "linear_cka,effective_rank",
        *FAST,
    )
    assert rc == 0, stdout
    rep = json.loads((out / "report.json").read_text())
    bc = rep["settings"]["base_capture"]
    assert bc["mode"] == "separate" and "--weight-space" in bc["reason"]
    ws = rep["analyses"]["weight_space"]["lora"]  # renamed with --name like everything else
    base = AutoModel.from_pretrained(base_dir, local_files_only=True)
    tuned = peft.PeftModel.from_pretrained(
        AutoModel.from_pretrained(base_dir, local_files_only=True), lora_dir
    )
    want = weight_space(base, tuned)
    assert set(ws["matrices"]) == set(want.matrices) and len(want.matrices) == 6
    for m, row in want.matrices.items():
        assert ws["matrices"][m]["delta_effective_rank"] == pytest.approx(
            row["delta_effective_rank"], rel=1e-12
        )
    lm = rep["analyses"]["layer_matching"]["lora"]
    assert lm["same_depth"] and len(lm["pairs"]) == 3
    mat = np.array(lm["matrix"])  # (base, tuned), from each model's own capture
    # its diagonal is the comparison's per-layer CKA (an independent capture of the same pairs)
    assert np.diag(mat) == pytest.approx(
        [r["metrics"]["linear_cka"] for r in rep["results"]], rel=1e-6
    )
    rows = {b: i for i, b in enumerate(lm["base_layers"])}
    for j, p in enumerate(lm["pairs"]):
        assert p["cka"] == mat[rows[p["base"]], j]
    assert lm["total"] >= np.trace(mat) - 1e-12  # the matching is at least the identity's
    html = (out / "report.html").read_text()
    assert "two models: the base was loaded separately (--weight-space" in html
    for fig in ("analysis_weight_space", "analysis_layer_matching"):
        assert (out / "plots" / f"{fig}.png").is_file()


def test_bad_merge_dtype_is_a_one_line_error_before_loading(
    base_dir, lora_dir, probe_file, tmp_path, capsys
):
    rc = main(
        [
            "compare",
            str(base_dir),
            str(lora_dir),
            "--probe",
            str(probe_file),
            "-o",
            str(tmp_path / "x"),
            "--merge-dtype",
            "float8",
            *FAST,
        ]
    )
    _, err = capsys.readouterr()
    assert rc != 0 and "--merge-dtype" in err and "float8" in err


def test_match_layers_compares_matched_pairs_when_depth_changes(tmp_path, capsys):
    """A LLaMA-Pro-style expansion (4 -> 6 blocks): same-name pairing is impossible, so
    --match-layers pairs each tuned block with its matched base block; the per-layer metrics
    are those of the matched pairs (checked against linear CKA of hooks' outputs)."""
    import torch

    from repspace.metrics import linear_cka
    from tests.compare.conftest import SENTENCES, word_tokenizer
    from tests.metrics.test_layer_matching import expanded_llama

    base, tuned = expanded_llama()
    tok = word_tokenizer()
    for model, name in ((base, "llama4"), (tuned, "llama-pro6")):
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    probe = tmp_path / "probe.txt"
    probe.write_text("\n".join(SENTENCES))
    out = tmp_path / "rep"
    args = [
        "compare",
        tmp_path / "llama4",
        tmp_path / "llama-pro6",
        "--probe",
        probe,
        "-o",
        out,
        "--metrics",
        "linear_cka,effective_rank,relative_shift",
        *FAST,
        "--num-samples",
        len(SENTENCES),
    ]  # every sentence: the hooks below see the same set
    rc, _, err = run_cli(capsys, *args)
    assert rc != 0 and "only in tuned" in err  # without --match-layers: a one-line error
    rc, stdout, _ = run_cli(capsys, *args, "--match-layers")
    assert rc == 0, stdout
    rep = json.loads((out / "report.json").read_text())
    assert "matched by cross-layer CKA" in rep["settings"]["layer_pairing"]
    lm = rep["analyses"]["layer_matching"]["llama-pro6"]
    assert [p["base"] for p in lm["pairs"]] == [
        "layers.0",
        "layers.1",
        "layers.1",
        "layers.2",
        "layers.3",
        "layers.3",
    ]
    assert rep["layers"] == [f"layers.{j}" for j in range(6)]
    # independent: mean-pooled block outputs from forward hooks on the same tokenised probe
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=64, return_tensors="pt")
    enc.pop("token_type_ids", None)
    keep = enc["attention_mask"][..., None].double()

    def pooled(model):
        got = []
        hooks = [
            b.register_forward_hook(
                lambda m, a, o: got.append(
                    ((o[0] if isinstance(o, tuple) else o).double() * keep).sum(1) / keep.sum(1)
                )
            )
            for b in model.layers
        ]
        with torch.no_grad():
            model(**enc)
        for h in hooks:
            h.remove()
        return got

    hb, ht = pooled(base), pooled(tuned)
    index = {f"layers.{i}": i for i in range(4)}
    for j, row in enumerate(rep["results"]):
        b = index[lm["pairs"][j]["base"]]
        want = linear_cka(hb[b], ht[j], precision="float64")
        assert row["metrics"]["linear_cka"] == pytest.approx(want, rel=1e-6)
        assert row["metrics"]["linear_cka"] == pytest.approx(lm["pairs"][j]["cka"], rel=1e-9)
    html = (out / "report.html").read_text()
    assert "Layer matching by cross-layer CKA" in html and "layer_pairing" in html
