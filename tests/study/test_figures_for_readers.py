"""Issue 27 item 3 for the study's and the tracker's figures (the gallery's other half; the
compare report's are checked in tests/report/test_figures_for_readers.py): every figure
type, drawn from a grid that supports all of them, is titled, captioned, at most
MAX_WIDTH inches wide and MAX_ASPECT times as wide as tall *as saved* (a legend outside the
panels widens the saved image), with no text under 6 pt, and no per-layer line across a
tower boundary.  The budget and data-size figures were 12.5 × 3.0 inches (4.2 : 1)."""

import numpy as np
import pytest
from matplotlib.image import imread

from repspace.report import plots as report_plots
from repspace.report.figures_layout import MAX_ASPECT, MAX_WIDTH
from repspace.study import figures as study_figures
from repspace.study.figures import CAPTIONS, make_figures
from repspace.study.results import build_tables
from repspace.study.seed_baseline import plot_seed_baseline
from repspace.track import figures as track_figures
from repspace.track.trajectory import Trajectory

from tests.report.test_figures_for_readers import crossing_lines, data_axes
from tests.study.records import LAYERS
from tests.study.test_figures import grid

DPI_PAD = 0.15  # bbox_inches="tight" keeps a 0.1 in pad around the drawn content
NINE = ["full", "lora", "adapter", "prefix", "prompt", "ia3", "adalink", "pt_lora", "pt_adapter"]
# LAYERS: two vision blocks, then two text blocks; the boundary sits between x = 1 and 2
BOUNDARY = 1.5


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{figure name: facts} for every study and tracker figure type, each drawn and saved."""
    folder = tmp_path_factory.mktemp("figures")
    facts: dict[str, dict] = {}
    real = report_plots.save_figure

    def keep(fig, stem):
        fig.draw_without_rendering()
        first = data_axes(fig)[0]
        title = (
            fig._suptitle.get_text()
            if fig._suptitle
            else next((t for loc in ("left", "center") if (t := first.get_title(loc))), "")
        )
        sizes = [
            t.get_fontsize()
            for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
            if getattr(t, "get_text", lambda: "")()
        ]
        facts[stem.name] = {
            "title": title,
            "min_font": min(sizes),
            "crossing": crossing_lines(fig, BOUNDARY),
        }
        paths = real(fig, stem)
        png = imread(stem.with_suffix(".png"))
        facts[stem.name]["inches"] = (png.shape[1] / 200, png.shape[0] / 200)  # saved at 200 dpi
        return paths

    with pytest.MonkeyPatch.context() as mp:
        for module in (study_figures, report_plots, track_figures):
            mp.setattr(module, "save_figure", keep)
        files, notes = make_figures(build_tables(grid()), folder)
        assert notes == [], notes
        rows = [
            {
                "task": "vqa",
                "method": m,
                "budget": None,
                "budget_field": None,
                "data_fraction": 1.0,
                "layer": layer,
                "moved": 0.01 * (i + 1) * (j + 1),
                "seed_variation": 0.004 * (j + 1),
            }
            for i, m in enumerate(NINE[:4])
            for j, layer in enumerate(LAYERS)
        ]
        plot_seed_baseline(rows, folder / "seed_baseline")
        traj = Trajectory()
        for step in range(0, 401, 50):
            traj.add(
                step,
                {
                    layer: {
                        "linear_cka": 1 - 1e-4 * step * (k + 1),
                        "effective_rank_tuned": 20 - 0.01 * step,
                    }
                    for k, layer in enumerate(LAYERS)
                },
            )
        track_figures.plot_trajectory(traj, folder / "track_trajectory")
        track_figures.plot_heatmap(traj, folder / "track_heatmap")
        track_figures.plot_runs({m: traj for m in NINE[:3]}, folder / "track_runs")
        steps = np.arange(0, 401, 50)
        panels = [
            {
                "label": m,
                "method": m,
                "context": "vqa",
                "steps": steps,
                "mean": 1 - 1e-4 * steps * (i + 1),
                "low": np.full(steps.size, np.nan),
                "high": np.full(steps.size, np.nan),
            }
            for i, m in enumerate(NINE)
        ]
        track_figures.plot_highlighted(panels, folder / "trajectory", "mean linear CKA", "Title")
    return facts


def test_every_study_and_tracker_figure_type_was_drawn(saved):
    assert set(saved) == {
        "score_vs_preservation",
        "effective_rank_layers",
        "cka_layers",
        "data_fraction",
        "budget",
        "ptpeft_vs_vanilla",
        "seed_baseline",
        "track_trajectory",
        "track_heatmap",
        "track_runs",
        "trajectory",
    }


def test_saved_size_fits_a_page_and_the_text_stays_readable(saved):
    for name, f in saved.items():
        w, h = f["inches"]
        assert w <= MAX_WIDTH + DPI_PAD and w / h <= MAX_ASPECT + 0.05, (name, w, h)
        assert f["min_font"] >= 6, (name, f["min_font"])


def test_titled_and_no_line_across_the_towers(saved):
    for name, f in saved.items():
        assert f["title"] and f["title"][0].isupper(), (name, f["title"])
        if name in ("cka_layers", "effective_rank_layers", "seed_baseline"):
            assert f["crossing"] == [], (name, f["crossing"])


@pytest.mark.parametrize("name", sorted(CAPTIONS))
def test_every_study_figure_has_a_caption_that_explains_its_bars(name):
    text = CAPTIONS[name]
    assert len(text) > 80 and text.rstrip().endswith("."), name
    if name != "trajectory":
        assert "one seed" in text, (name, text)  # where a one-seed bar or band comes from
