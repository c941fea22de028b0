"""Issue 27 item 3: figures any reader can read, checked on every figure type a compare report
draws (the headline figures and the analyses'), with few checkpoints and with nine:

- a title on every figure and a caption that says what is drawn (numbered in report.md);
- no line joins the last layer of one tower to the first of the next, and only figures that
  draw a tower divider say so in their caption;
- more than five lines never share a panel: small multiples, one highlighted checkpoint each;
- one quantity, one y axis: panels of a figure that show the same quantity share limits and
  scale; layer-matching panels share one colour scale with one colour bar;
- log axes where values span more than a factor of 10, said on the axis and in the caption;
- no figure wider than 7.5 inches or more than 2.5 times as wide as tall (the drift figure
  was 15.4 × 3.2), no text under 6 pt;
- the weight-space figure draws intruder counts as bars and ΔW's rank on a log axis when LoRA
  (≈ 4) meets full fine-tuning (≈ 180); debiased CKA is drawn only where it says something
  plain CKA does not, and the caption says which.

The checkers are tested on figures made to break them (so a clean pass means clean).
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.lines import Line2D

from repspace.report import (
    CheckpointInfo,
    CompareResult,
    figures_layout,
    figures_lines,
    figures_points,
    weight_figures,
    write_report,
)
from repspace.report import plots as P
from repspace.report.analyses import analysis_caption, analysis_plots
from repspace.report.figures_layout import CONTEXT_COLOR, MAX_ASPECT, MAX_LINES, MAX_WIDTH
from repspace.report.style import BASE_COLOR, subplots

TWO_TOWERS = [f"vision_model.encoder.layers.{i}" for i in range(3)] + [
    f"text_decoder.bert.encoder.layer.{i}" for i in range(3)
]
ONE_TOWER = [f"encoder.layer.{i}" for i in range(6)]
NINE = ["full", "lora", "adapter", "prefix", "prompt", "ia3", "adalink", "pt_lora", "pt_adapter"]
BOUNDARY = 2.5  # between vision layer 2 (x = 2) and text layer 0 (x = 3)


def make_result(
    names, layers=TWO_TOWERS, *, ranks=(8.0, 12.0), debiased_gap=0.0, ws_ranks=None, analyses=True
) -> CompareResult:
    rng = np.random.default_rng(0)
    metrics, intervals = {}, {}
    for i, n in enumerate(names):
        metrics[n], intervals[n] = {}, {}
        for j, layer in enumerate(layers):
            cka = 0.97 - 0.02 * i - 0.01 * j
            row = {
                "linear_cka": cka,
                "linear_cka_debiased": cka - debiased_gap,
                "effective_rank_base": ranks[0] + j,
                "effective_rank_tuned": np.linspace(*ranks, len(names))[i] + j,
                "frechet_distance": 3.0 * i + j,
                "mmd_linear": 0.1 * i + 0.01 * j,
                "mmd_rbf": 0.05 * i + 0.002 * j,
            }
            metrics[n][layer] = row
            intervals[n][layer] = {
                k: {"se": 0.004, "low": v - 0.008, "high": v + 0.008} for k, v in row.items()
            }
    spectra_layers = [layers[0], layers[len(layers) // 2], layers[-1]]
    sv = {layer: np.sort(rng.random(10))[::-1] + 0.1 for layer in spectra_layers}
    spectra = {
        "Base": sv,
        **{n: {k: v * (1 + 0.05 * i) for k, v in sv.items()} for i, n in enumerate(names)},
    }
    points = {n: rng.normal(i * 0.1, 1.0, size=(40, 2)) for i, n in enumerate(["Base", *names])}
    result = CompareResult(
        base=CheckpointInfo("Base", "models/base", "hf"),
        tuned=[CheckpointInfo(n, f"runs/{n}", "peft") for n in names],
        layers=layers,
        metrics=metrics,
        settings={
            "layers": "blocks",
            "pooling": "mean",
            "sample_rows": 40,
            "intervals": {"method": "jackknife", "blocks": 16, "level": 0.95},
        },
        probe={"source": "builtin:shapes-world", "num_samples": 64},
        spectra=spectra,
        embedding={"layer": layers[-1], "method": "pca", "points": points},
        intervals=intervals,
    )
    if analyses:
        ws_ranks = ws_ranks or {n: 4.0 if "lora" in n else 180.0 for n in names}
        result.analyses = {
            "segments": {
                n: {
                    layer: {
                        "text": {"linear_cka": 0.9 - 0.01 * i},
                        "image": {"linear_cka": 0.95 - 0.01 * i},
                    }
                    for layer in layers
                }
                for i, n in enumerate(names)
            },
            "adapter_effect": {
                n: {
                    "blocks": {
                        layer: {
                            "mean": 0.01 * (i + 1) * (j + 1),
                            "q25": 0.005 * (i + 1) * (j + 1),
                            "q75": 0.02 * (i + 1) * (j + 1),
                        }
                        for j, layer in enumerate(layers)
                    }
                }
                for i, n in enumerate(names)
            },
            "weight_space": {
                n: {
                    "blocks": {
                        layer: {
                            "matrices": 6,
                            "relative_delta": 0.01,
                            "delta_effective_rank": ws_ranks[n] + j,
                            "intruder_dimensions": (i + j) % 3,
                        }
                        for j, layer in enumerate(layers)
                    }
                }
                for i, n in enumerate(names)
            },
            "merge_fidelity": {
                n: {
                    "bfloat16": {
                        "layers": {
                            layer: {
                                "relative_shift_mean": 1e-3 * (i + 1),
                                "cast_relative_shift_mean": 1e-4,
                            }
                            for layer in layers
                        },
                        "summary": {},
                    }
                }
                for i, n in enumerate(names[:2])
            },
            "layer_matching": {
                n: {
                    "matrix": (lo + (1 - lo) * rng.random((4, 6))).tolist(),
                    "base_layers": [f"layers.{k}" for k in range(4)],
                    "tuned_layers": [f"layers.{k}" for k in range(6)],
                    "pairs": [
                        {"tuned": f"layers.{k}", "base": f"layers.{k * 4 // 6}", "cka": 0.9}
                        for k in range(6)
                    ],
                }
                for n, lo in zip(names[:2], (0.2, 0.7))
            },
        }
    return result


@pytest.fixture(scope="module")
def capture():
    """``draw(result, figures=None)``: {figure name: Figure} of the figures drawn (all, or
    those named), nothing written."""
    figs = []

    def keep(fig, stem):
        figs.append((stem.name, fig))
        return [stem.with_suffix(".png")]

    def draw(result, figures=None, folder=Path("unused")):
        figs.clear()
        with pytest.MonkeyPatch.context() as mp:
            for module in (figures_layout, figures_lines, figures_points, weight_figures, P):
                mp.setattr(module, "save_figure", keep)
            for name, fn in P.ALL_PLOTS.items():
                if figures is None or name in figures:
                    fn(result, folder / name)
            analysis_plots(result, folder, only=None if figures is None else tuple(figures))
        drawn = dict(figs)
        for fig in drawn.values():
            fig.draw_without_rendering()  # constrained layout and tick labels as saved
        return drawn

    return draw


@pytest.fixture(scope="module")
def drawn(capture):
    """Every figure type, drawn once for three and for nine checkpoints."""
    out = {}
    for key, names in (("three", NINE[:3]), ("nine", NINE)):
        result = make_result(names)
        out[key] = result, capture(result)
    return out


def data_axes(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def highlighted(ax) -> list[Line2D]:
    """Lines in a method colour (not the base grey, the context grey or a reference)."""
    return [
        ln
        for ln in ax.get_lines()
        if len(ln.get_xdata()) > 2
        and ln.get_color() not in (CONTEXT_COLOR, BASE_COLOR, "0.6")
        and not ln.get_label().startswith("_")
    ]


def crossing_lines(fig, boundary=BOUNDARY) -> list[str]:
    """Labels of lines with a drawn segment across x = ``boundary`` (both ends finite)."""
    bad = []
    for ax in data_axes(fig):
        for ln in ax.get_lines():
            x = np.asarray(ln.get_xdata(), dtype=float)
            y = np.asarray(ln.get_ydata(), dtype=float)
            if x.size < 2 or ln.get_linestyle() in ("None", " ", ""):
                continue
            ok = np.isfinite(y[:-1]) & np.isfinite(y[1:])
            lo, hi = np.minimum(x[:-1], x[1:]), np.maximum(x[:-1], x[1:])
            if np.any(ok & (lo < boundary) & (hi > boundary)):
                bad.append(ln.get_label())
    return bad


def unshared_axes(axes) -> list:
    """Axes whose y limits or scale differ from the first's."""
    ref = axes[0]
    return [
        ax
        for ax in axes[1:]
        if ax.get_yscale() != ref.get_yscale() or not np.allclose(ax.get_ylim(), ref.get_ylim())
    ]


def has_divider(fig, boundary=BOUNDARY) -> bool:
    return any(
        np.allclose(ln.get_xdata(), boundary)
        for ax in data_axes(fig)
        for ln in ax.get_lines()
        if len(ln.get_xdata()) == 2
    )


def caption_of(name, result):
    return (
        analysis_caption(name, result) if name.startswith("analysis_") else P.caption(name, result)
    )


# -- the checkers can fail ---------------------------------------------------------------------
def test_checkers_see_what_they_look_for():
    fig, axes = subplots(1, 2)
    axes[0].plot([0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], label="joined")
    axes[1].plot(*P.broken(np.arange(6.0), TWO_TOWERS), label="broken")
    axes[1].set_yscale("log")
    assert crossing_lines(fig) == ["joined"]
    assert unshared_axes(list(axes)) == [axes[1]]
    assert not has_divider(fig)
    axes[0].axvline(BOUNDARY)
    assert has_divider(fig)
    plt.close(fig)


# -- every figure type -------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["three", "nine"])
def test_every_figure_titled_captioned_readable(key, drawn):
    result, figs = drawn[key]
    assert set(figs) >= {
        "cka",
        "effective_rank",
        "spectra",
        "drift",
        "embedding",
        "heatmap",
        "analysis_segments",
        "analysis_adapter_effect",
        "analysis_weight_space",
        "analysis_merge_fidelity",
        "analysis_layer_matching",
    }
    for name, fig in figs.items():
        title = fig._suptitle.get_text() if fig._suptitle else data_axes(fig)[0].get_title()
        assert title and title[0].isupper(), name
        text = caption_of(name, result)
        assert text != name and len(text) > 80 and text.rstrip().endswith("."), (name, text)
        w, h = fig.get_size_inches()
        assert w <= MAX_WIDTH + 1e-6 and w / h <= MAX_ASPECT + 1e-6, (name, w, h)
        sizes = [
            t.get_fontsize()
            for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
            if getattr(t, "get_text", lambda: "")()
        ]
        assert min(sizes) >= 6, (name, min(sizes))
        if name != "spectra":  # its x axis is the component index, not the layer
            assert not crossing_lines(fig), (name, crossing_lines(fig))
        # a caption mentions the tower divider exactly when the figure draws one
        assert ("vertical line separates the towers" in text) == has_divider(fig), name
        for ax in data_axes(fig):
            assert len(highlighted(ax)) <= MAX_LINES, (
                name,
                [ln.get_label() for ln in highlighted(ax)],
            )


def test_many_checkpoints_get_small_multiples_on_one_axis(drawn):
    result, figs = drawn["nine"]
    for name in ("cka", "effective_rank", "embedding"):
        axes = data_axes(figs[name])
        assert len(axes) == len(NINE), name  # one panel per checkpoint
        assert not unshared_axes(axes), name
        assert "One panel per" in caption_of(name, result)
    for ax in data_axes(figs["cka"]):  # the panel's own checkpoint in colour, the rest grey
        assert len(highlighted(ax)) == 1
        assert sum(ln.get_color() == CONTEXT_COLOR for ln in ax.get_lines()) == len(NINE) - 1
    # several quantities: one row per checkpoint, each column (quantity) on its own y axis
    drift = data_axes(figs["drift"])
    assert len(drift) == 3 * len(NINE)
    for col in range(3):
        assert not unshared_axes(drift[col::3])
    spectra = data_axes(figs["spectra"])
    assert len(spectra) == 3 * len(NINE) and not unshared_axes(spectra)


def test_few_checkpoints_share_one_panel(drawn):
    result, figs = drawn["three"]
    assert len(data_axes(figs["effective_rank"])) == 1
    assert len(highlighted(data_axes(figs["effective_rank"])[0])) == 3
    spectra = data_axes(figs["spectra"])
    assert len(spectra) == 3 and not unshared_axes(spectra)
    assert "One panel per" not in caption_of("cka", result)


def test_drift_figure_states_units_and_bandwidth(drawn):
    result, figs = drawn["three"]
    fig = figs["drift"]
    w, h = fig.get_size_inches()
    assert w / h < 2.5  # was 15.4 × 3.2
    labels = " ".join(ax.get_ylabel() + ax.get_title(loc="left") for ax in data_axes(fig))
    assert "feature units²" in labels and "median" in labels
    text = P.caption("drift", result)
    assert (
        "median pairwise distance" in text and "40 rows" in text and "squared feature units" in text
    )


def test_log_axis_where_ranks_span_orders_of_magnitude(capture):
    wide = make_result(NINE[:3], ranks=(4.0, 180.0), analyses=False)
    narrow = make_result(NINE[:3], ranks=(8.0, 12.0), analyses=False)
    ax = data_axes(capture(wide, ["effective_rank"])["effective_rank"])[0]
    assert ax.get_yscale() == "log" and "log" in ax.get_ylabel()
    assert "Log y axis" in P.caption("effective_rank", wide)
    ax = data_axes(capture(narrow, ["effective_rank"])["effective_rank"])[0]
    assert ax.get_yscale() == "linear" and "Log" not in P.caption("effective_rank", narrow)


def test_weight_space_bars_log_rank_title_caption(capture):
    result = make_result(["lora", "full"])
    fig = capture(result, ["analysis_weight_space"])["analysis_weight_space"]
    rank, intruders, _rep = data_axes(fig)
    assert rank.get_yscale() == "log"  # LoRA ≈ 4 vs full fine-tuning ≈ 180
    bars = [p for p in intruders.patches if p.get_height() > 0]
    assert bars and all(float(p.get_height()).is_integer() for p in bars)
    assert not highlighted(intruders)  # counts are bars, not lines
    assert all(float(t).is_integer() for t in intruders.get_yticks())
    assert fig._suptitle.get_text().startswith("Weight space")
    text = analysis_caption("analysis_weight_space", result)
    assert "log y axis" in text and "bars" in text
    same = make_result(["lora", "lora-r16"], ws_ranks={"lora": 4.0, "lora-r16": 8.0})
    rank = data_axes(capture(same, ["analysis_weight_space"])["analysis_weight_space"])[0]
    assert rank.get_yscale() == "linear"


def test_layer_matching_one_colour_scale_one_colour_bar(drawn):
    result, figs = drawn["three"]
    fig = figs["analysis_layer_matching"]
    images = [ax.images[0] for ax in data_axes(fig)]
    assert len(images) == 2 and len({im.get_clim() for im in images}) == 1
    lo, hi = images[0].get_clim()
    values = np.concatenate(
        [np.ravel(m["matrix"]) for m in result.analyses["layer_matching"].values()]
    )
    assert lo == pytest.approx(values.min()) and hi == pytest.approx(values.max())
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 1
    assert "one colour scale" in analysis_caption("analysis_layer_matching", result)


def test_adapter_effect_band_explained(drawn):
    result, figs = drawn["three"]
    fig = figs["analysis_adapter_effect"]
    assert any("interquartile" in t.get_text() for t in fig.legends[0].get_texts())
    text = analysis_caption("analysis_adapter_effect", result)
    assert "25th to 75th percentile" in text and "not an uncertainty" in text


@pytest.mark.parametrize("gap, panels", [(0.001, 1), (0.05, 2)])
def test_debiased_cka_drawn_only_when_it_differs(gap, panels, capture):
    result = make_result(NINE[:3], debiased_gap=gap, analyses=False)
    axes = data_axes(capture(result, ["cka"])["cka"])
    assert len(axes) == panels and not unshared_axes(axes)
    text = P.caption("cka", result)
    if panels == 1:  # not silently dropped: the caption says where the values are
        assert "agrees with it within its 95% interval" in text and "report.json" in text
    else:
        assert "debiased linear CKA (bottom" in text and "share one y axis" in text


def test_embedding_caption_is_truthful(capture):
    for layers in (TWO_TOWERS, ONE_TOWER):
        result = make_result(NINE[:3], layers, analyses=False)
        fig = capture(result, ["embedding"])["embedding"]
        text = P.caption("embedding", result)
        assert "vertical line" not in text and "tower" not in text.lower()
        assert "PCA" in text and "jointly" in text and "40 rows" in text
        assert len(data_axes(fig)) == 3 and not unshared_axes(data_axes(fig))


def test_single_tower_captions_never_mention_a_divider(capture):
    result = make_result(NINE[:3], ONE_TOWER)
    figs = capture(result)
    for name, fig in figs.items():
        assert "vertical line" not in caption_of(name, result) and not has_divider(fig), name


def test_report_numbers_every_caption(tmp_path):
    result = make_result(NINE[:3])
    out = write_report(result, tmp_path / "r")
    md = (out / "report.md").read_text()
    figures = sorted((out / "plots").glob("*.png"))
    assert len(figures) == 11
    for i in range(1, len(figures) + 1):
        assert f"*Figure {i}.* " in md


def test_weights_figures_are_numbered_and_captioned():
    from repspace.report.weight_figures import figures_markdown

    ws = make_result(["lora", "full"]).analyses["weight_space"]
    md = figures_markdown(
        {n: r["blocks"] for n, r in ws.items()}, representation=True, effects=True
    )
    assert "*Figure 1.* Weight space per block" in md and "log y axis" in md
    assert "*Figure 2.* Where the adapter acts" in md and "Figure 3" not in md
    assert "![weight_vs_representation](weight_vs_representation.png)" in md
    assert figures_markdown({}) == ""


def test_small_multiple_captions_describe_their_layout(drawn):
    result, _ = drawn["nine"]
    drift = P.caption("drift", result)
    assert "One row of panels per checkpoint" in drift and "a column) share their y axis" in drift
    assert "One panel per checkpoint" in P.caption("cka", result)
    heat = P.caption("heatmap", result)
    assert "vertical line separates" in heat and "lines are not joined" not in heat
