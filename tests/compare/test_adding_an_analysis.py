"""Adding an analysis touches its own module and nothing else (docs/compare.md, "Adding an
analysis").

A toy analysis is declared in this file, outside the package, with one
:func:`~repspace.report.analysis_registry.register_analysis` call: its name, its flag and
help, what it needs, how it runs on the loaded checkpoints and probe batches, its report
section and its figure with a caption.  Without any edit elsewhere `repspace compare --help`
lists its flag, the flag runs it, and report.json, report.md, report.html and plots/ show it.
"""

from __future__ import annotations

import json

import pytest

from repspace.cli import main
from repspace.report import analysis_registry as registry

peft = pytest.importorskip("peft")

FAST = ["--embedding", "none", "--quiet", "--sample-rows", "64", "--num-samples", "48"]
TITLE = "Toy: probe rows and weights per checkpoint"
DESCRIPTION = "A test analysis: the probe rows each tuned checkpoint saw and its weight count."
CAPTION = "Toy figure: weights per tuned checkpoint, test only"


def _run(ctx: registry.AnalysisContext, name: str, ck) -> dict:
    """Rows of the probe batches the comparison used, and the checkpoint's weight count."""
    rows = sum(len(b["input_ids"]) for b in ctx.batches_fn())
    return {
        "rows": rows,
        "weights": int(sum(p.numel() for p in ck.model.parameters())),
        "batch_size": ctx.settings.batch_size,
    }


def _tables(result) -> list[registry.Table]:
    toy = (result.analyses or {}).get("toy_stat") or {}
    if not toy:
        return []
    return [
        registry.Table(
            TITLE,
            DESCRIPTION,
            ["checkpoint", "probe rows", "weights"],
            [[n, str(r["rows"]), str(r["weights"])] for n, r in toy.items()],
            ["toy note: counted on the comparison's own batches"],
        )
    ]


def _plot(result, stem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    toy = result.analyses.get("toy_stat") or {}
    if not toy:
        return []
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(list(toy), [r["weights"] for r in toy.values()])
    files = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    stem.parent.mkdir(parents=True, exist_ok=True)
    for f in files:
        fig.savefig(f)
    plt.close(fig)
    return files


@pytest.fixture()
def toy_analysis():
    registry.register_analysis(
        name="toy_stat",
        run=_run,
        tables=_tables,
        options=(registry.Option("--toy-stat", help="also the toy statistic (a test analysis)"),),
        figures=(registry.Figure("analysis_toy_stat", _plot, lambda result: CAPTION),),
    )
    try:
        yield "toy_stat"
    finally:
        registry.unregister_analysis("toy_stat")
    assert "toy_stat" not in {a.name for a in registry.analyses()}


def test_a_registered_analysis_is_offered_run_and_reported(
    toy_analysis, base_dir, lora_dir, probe_file, tmp_path, capsys
):
    assert main(["compare", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--toy-stat" in help_text and "also the toy statistic (a test analysis)" in help_text

    out = tmp_path / "rep"
    rc = main(
        [
            "compare",
            str(base_dir),
            str(lora_dir),
            "--probe",
            str(probe_file),
            "-o",
            str(out),
            "--metrics",
            "linear_cka",
            "--toy-stat",
            "--batch-size",
            "16",
            *FAST,
        ]
    )
    assert rc == 0, capsys.readouterr()
    rep = json.loads((out / "report.json").read_text())
    name = rep["inputs"]["tuned"][0]["name"]
    assert set(rep["analyses"]) == {"toy_stat"}
    assert rep["analyses"]["toy_stat"][name]["rows"] == 48
    assert rep["analyses"]["toy_stat"][name]["batch_size"] == 16
    assert rep["analyses"]["toy_stat"][name]["weights"] > 0
    assert rep["settings"]["base_capture"] == {"mode": "adapter_disabled"}  # needs one model
    assert (out / "plots" / "analysis_toy_stat.png").is_file()
    assert "analysis_toy_stat" in rep["plots"]
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in ("## Analyses", TITLE, DESCRIPTION, "toy note", "analysis_toy_stat.png", CAPTION):
        assert text in md, text
    for text in (TITLE, DESCRIPTION, "toy note", 'id="fig-analysis_toy_stat"', CAPTION):
        assert text in html, text


def test_the_api_asks_for_it_by_name_and_refuses_unknown_names(toy_analysis):
    from repspace._constraints import SettingError
    from repspace.compare import CompareConfig
    from repspace.compare.analyses import needs_separate_base

    s = CompareConfig(analyses=["toy_stat", "toy_stat"])
    assert s.analyses == ("toy_stat",) and s.analyses_wanted
    assert [a.name for a in registry.wanted_analyses(s)] == ["toy_stat"]
    assert needs_separate_base(settings=s) is None  # declared: the base may be the adapter's
    with pytest.raises(
        SettingError,
        match=r"analyses must be names of registered analyses run "
        r"by name \(toy_stat;",
    ):
        CompareConfig(analyses=["toy_stats"])


def test_a_declaration_the_cli_or_report_cannot_use_is_refused():
    with pytest.raises(ValueError, match="option --adapter-effect is already adapter_effect's"):
        import repspace.compare.analyses  # noqa: F401 - the built-ins are registered

        registry.register_analysis(
            name="toy_clash", options=(registry.Option("--adapter-effect", help="clash"),)
        )
    with pytest.raises(ValueError, match="figure 'toy' must start with 'analysis_'"):
        registry.register_analysis(
            name="toy_fig", figures=(registry.Figure("toy", lambda r, s: [], lambda r: ""),)
        )
    with pytest.raises(ValueError, match="'adapter_effect' is already registered"):
        registry.register_analysis(name="adapter_effect")
    assert not {"toy_clash", "toy_fig"} & {a.name for a in registry.analyses()}
