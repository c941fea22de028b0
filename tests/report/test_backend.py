"""repspace never touches pyplot's global state: no backend switch, no registered figures."""

import subprocess
import sys

import matplotlib
import pytest

from repspace.report.style import paper_style, subplots


def test_importing_the_figure_makers_keeps_the_users_backend():
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import repspace.report.style, repspace.report.plots, repspace.study.figures, "
        "repspace.compare.weights, repspace.compare.merge_fidelity, repspace.study.seed_baseline; "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


@pytest.mark.parametrize("ext", ["png", "pdf"])
def test_figures_are_not_registered_with_pyplot_and_save(tmp_path, ext):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with paper_style():
        fig, axes = subplots(1, 2, figsize=(4, 2), sharey=True)
        axes[0].plot([0, 1], [1, 2])
    assert plt.get_fignums() == before
    assert axes[1].get_shared_y_axes().joined(axes[0], axes[1])
    path = tmp_path / f"f.{ext}"
    fig.savefig(path, format=ext)
    head = path.read_bytes()[:8]
    assert head.startswith(b"\x89PNG" if ext == "png" else b"%PDF")
    assert matplotlib.get_backend()  # untouched: whatever the session had
