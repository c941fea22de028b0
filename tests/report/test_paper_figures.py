"""Issue 17: figures and reports a reviewer accepts (towers apart, legends clear of the data,
distinct styles per method, scales fitted to the data, captions, a results-section header)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from repspace.report import CheckpointInfo, CompareResult, write_report
from repspace.report import plots as P
from repspace.report.style import BASE_COLOR, METHOD_COLORS, compact_number, styles_for

TWO_TOWERS = [f"vision_model.encoder.layers.{i}" for i in range(3)] + [
    f"text_decoder.bert.encoder.layer.{i}" for i in range(3)
]


@pytest.fixture(scope="module")
def towers():
    rng = np.random.default_rng(1)
    names = ["full", "lora", "lora-r16"]
    metrics = {
        n: {
            layer: {
                "linear_cka": 0.8 + 0.03 * i + 0.01 * j,
                "linear_cka_debiased": 0.79 + 0.03 * i,
                "effective_rank_base": 10.0 + j,
                "effective_rank_tuned": 9.0 + j + i,
                "frechet_distance": 5.0 - i + j,
            }
            for j, layer in enumerate(TWO_TOWERS)
        }
        for i, n in enumerate(names)
    }
    sv = {layer: np.sort(rng.random(8))[::-1] + 0.1 for layer in TWO_TOWERS[-1:]}
    spectra = {
        "Base": sv,
        **{n: {k: v * (1 + 0.1 * i) for k, v in sv.items()} for i, n in enumerate(names)},
    }
    return CompareResult(
        base=CheckpointInfo("Base", "models/base", "hf", "ab" * 32),
        tuned=[CheckpointInfo(n, f"runs/{n}", "peft", "cd" * 32) for n in names],
        layers=TWO_TOWERS,
        metrics=metrics,
        settings={"layers": "blocks", "pooling": "mean"},
        probe={"source": "builtin:shapes-world", "num_samples": 64, "sha256": "ef" * 32},
        spectra=spectra,
        warnings=["RepspaceWarning: something to see"],
    )


def test_layer_groups_split_towers_only():
    assert [g for g, _ in P.layer_groups(TWO_TOWERS)] == ["vision_model", "text_decoder"]
    assert P.layer_groups([f"encoder.layer.{i}" for i in range(4)]) == [(None, [0, 1, 2, 3])]
    assert P.layer_groups(["embeddings", "encoder.layer.0", "encoder.layer.1"]) == [
        (None, [0, 1, 2])
    ]


def test_no_line_joins_the_last_vision_layer_to_the_first_text_layer():
    x, y = P.broken(np.arange(6.0), TWO_TOWERS)
    gap = int(np.flatnonzero(np.isnan(y))[0])
    assert x[gap - 1] == 2 and np.isnan(y[gap]) and x[gap + 1] == 3


def _capture(monkeypatch):
    from repspace.report import figures_lines, figures_points

    figs = []
    for module in (P, figures_lines, figures_points):  # where the figures are drawn
        monkeypatch.setattr(module, "save_figure", lambda fig, stem: figs.append(fig) or [stem])
    return figs


def test_per_layer_lines_broken_and_legend_outside(towers, monkeypatch, tmp_path):
    figs = _capture(monkeypatch)
    P.plot_cka(towers, tmp_path / "cka")
    fig = figs[0]
    fig.draw_without_rendering()  # runs the layout engine, as savefig does
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label() in ("full", "lora", "lora-r16")]
    assert len(lines) == 3
    for ln in lines:  # a NaN between index 2 and 3: the towers are never joined
        assert np.isnan(ln.get_ydata()).sum() == 1
    legend = (
        fig.legends[0] if fig.legends else next(a.get_legend() for a in fig.axes if a.get_legend())
    )
    lb, panels = legend.get_window_extent(), [a.get_window_extent() for a in fig.axes[:2]]
    assert all(lb.x0 >= p.x1 - 1 or lb.y1 <= p.y0 + 1 for p in panels)  # clear of every panel
    # one look per checkpoint: colour+marker+linestyle unique, base grey not full's black
    looks = {(ln.get_color(), ln.get_marker(), ln.get_linestyle()) for ln in lines}
    assert len(looks) == 3
    plt.close(fig)


def test_styles_distinct_and_base_is_not_full():
    st = styles_for(["full", "lora", "lora-r16", "pt_lora", "Base"], base="Base")
    assert st["Base"]["color"] == BASE_COLOR != st["full"]["color"] == METHOD_COLORS["full"]
    assert st["lora"]["color"] == st["lora-r16"]["color"]
    assert (st["lora"]["marker"], st["lora"]["ls"]) != (
        st["lora-r16"]["marker"],
        st["lora-r16"]["ls"],
    )
    assert len({(s["color"], s["marker"]) for s in st.values()}) == 5
    # a second LoRA's marker is no other method's (r16 must not wear the adapter's triangle)
    from repspace.report.style import METHOD_MARKERS

    assert st["lora-r16"]["marker"] not in set(METHOD_MARKERS.values())
    assert compact_number(2_000_000) == "2M" and compact_number(0.01) == "0.01"


def test_heatmap_scale_fitted_with_colour_bar(towers, monkeypatch, tmp_path):
    figs = _capture(monkeypatch)
    P.plot_heatmap(towers, tmp_path / "h")
    fig = figs[0]
    image = fig.axes[0].images[0]
    lo, hi = image.get_clim()
    assert lo == pytest.approx(0.8) and hi == pytest.approx(0.91)  # the data's range, not 0..1
    assert len(fig.axes) >= 2 and fig.axes[0].get_title()[0].isupper()  # colour bar, title
    plt.close(fig)


def test_spectra_relative_to_the_base(towers, monkeypatch, tmp_path):
    figs = _capture(monkeypatch)
    P.plot_spectra(towers, tmp_path / "s")
    ax = figs[0].axes[0]
    lora = next(ln for ln in ax.get_lines() if ln.get_label() == "lora")
    np.testing.assert_allclose(lora.get_ydata(), 1.1)
    plt.close(figs[0])


def test_report_reads_like_a_results_section(towers, tmp_path):
    out = write_report(towers, tmp_path / "r")
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (
        "Setup",
        "builtin:shapes-world",
        "n = 64",
        "pooling",
        "vision_model: layers.0",
        "Key numbers",
        "<details>",
        "RepspaceWarning: something to see",
    ):
        assert text in html, text
    assert html.count("<figcaption>") == html.count("data:image/png") >= 4
    assert md.count("*Figure ") >= 4 and "## Key numbers" in md and "<details>" in md
    assert "(text_decoder: layer.2)" in html  # key-numbers header names the last layer
