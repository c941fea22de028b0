"""One look for every figure: method colours, sizes and fonts for papers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # reports are written headless; never open a window
import matplotlib.pyplot as plt  # noqa: E402

BASE_COLOR = "#222222"
# Fixed colours per method family (colour-blind safe, Okabe-Ito + Tol), so a method keeps
# its colour across every figure and every report.
METHOD_COLORS = {
    "pt-lora": "#CC3311",
    "pt-adapter": "#EE7733",
    "full": "#000000",
    "lora": "#0072B2",
    "adapter": "#E69F00",
    "prefix": "#009E73",
    "prompt": "#56B4E9",
    "ia3": "#CC79A7",
    "adalink": "#8B6914",
}
FALLBACK = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
            "#882255", "#44AA99", "#999933"]


def color_for(name: str, index: int = 0) -> str:
    """The method's colour if the checkpoint name contains a known method, else a palette slot."""
    low = name.lower().replace("_", "-")
    for method in sorted(METHOD_COLORS, key=len, reverse=True):  # "pt-lora" before "lora"
        if method in low:
            return METHOD_COLORS[method]
    return FALLBACK[index % len(FALLBACK)]


def colors_for(names: list[str]) -> dict[str, str]:
    return {n: color_for(n, i) for i, n in enumerate(names)}


PAPER_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "pdf.fonttype": 42,  # embed TrueType: editable text in the vector PDF
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    # Labels are checkpoint and layer names, i.e. anyone's text: "$x_1$" or "\\frac" must print
    # as written, never go through mathtext or LaTeX (a parse error would kill the report).
    "text.parse_math": False,
    "text.usetex": False,
}


def paper_style():
    """Context manager applying :data:`PAPER_RC`."""
    return plt.rc_context(PAPER_RC)


def log_axis(ax, axis: str = "y") -> None:
    """Put ``axis`` of ``ax`` on a log scale with plain-number tick labels ("0.01", "100").

    matplotlib's default log labels are mathtext (``$\\mathdefault{10^{2}}$``), which
    :data:`PAPER_RC` turns off so that names print as written; without this they would
    appear as raw TeX source."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())
