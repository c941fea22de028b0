"""One look for every figure: method colours, sizes and fonts for papers."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
from matplotlib.figure import Figure

BASE_COLOR = "#8C8C8C"  # mid grey: never the same as full fine-tuning's black
BASE_MARKER = "s"


class _FactView(Mapping):
    """``{method name: colour or marker}`` read from each method's own facts
    (:class:`repspace.methods.MethodFacts`); methods without one are left out."""

    def __init__(self, field: str):
        self._field = field

    def _table(self) -> dict[str, str]:
        from repspace.methods import method_facts  # the registry, read when a figure is drawn

        return {
            name: getattr(f, self._field)
            for name, f in method_facts().items()
            if getattr(f, self._field)
        }

    def __getitem__(self, method: str) -> str:
        return self._table()[method]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


# A method keeps its colour (colour-blind safe, Okabe-Ito + Tol) and marker (so it stays
# identifiable in greyscale print) across every figure and report.
METHOD_COLORS = _FactView("color")
METHOD_MARKERS = _FactView("marker")
FALLBACK_MARKERS = ["o", "^", "D", "v", "P", "X", "*", "h", "p", "<", ">"]
# Further checkpoints of one family (lora-r16 after lora-r8) take these markers, first those
# that no method wears.
FAMILY_MARKERS = ["<", ">", "d", "8", "H", "1", "2", "3", "4"]
# Checkpoints of one family (lora-r8, lora-r16) share the colour; these tell them apart.
LINESTYLES = ["-", "--", "-.", ":"]
FALLBACK = [
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#F0E442",
    "#882255",
    "#44AA99",
    "#999933",
]


def color_for(name: str, index: int = 0) -> str:
    """The method's colour if the checkpoint name contains a known method, else a palette slot."""
    family = _family(name)
    return METHOD_COLORS[family] if family else FALLBACK[index % len(FALLBACK)]


def colors_for(names: list[str]) -> dict[str, str]:
    return {n: color_for(n, i) for i, n in enumerate(names)}


def _family(name: str) -> str | None:
    """The registered method whose name ``name`` contains (``-`` and ``_`` alike; the longest
    wins, so "pt-lora-r8" is pt_lora, not lora), among those with a colour."""
    low = name.lower().replace("-", "_")
    colours = METHOD_COLORS._table()
    return next((m for m in sorted(colours, key=len, reverse=True) if m in low), None)


def marker_for(name: str, index: int = 0) -> str:
    """The method's marker if the name contains a known method, else a fallback slot."""
    family = _family(name)
    return METHOD_MARKERS[family] if family else FALLBACK_MARKERS[index % len(FALLBACK_MARKERS)]


def styles_for(names: list[str], base: str | None = None) -> dict[str, dict]:
    """Matplotlib keywords (``color``, ``marker``, ``ls``) per name, one distinct look each.

    A name with a method in it gets the method's colour and marker (:data:`METHOD_COLORS`,
    :data:`METHOD_MARKERS`); further checkpoints of the same family (``lora-r8``,
    ``lora-r16``) keep the colour and get the next line style and a different marker.
    ``base`` (if given and in ``names``) gets the grey dashed base look."""
    out: dict[str, dict] = {}
    seen: dict[str, int] = {}
    for i, name in enumerate(dict.fromkeys(names)):  # a name given twice keeps one look
        if base is not None and name == base:
            out[name] = {"color": BASE_COLOR, "marker": BASE_MARKER, "ls": "--"}
            continue
        color, marker = color_for(name, i), marker_for(name, i)
        key = color
        k = seen.get(key, 0)
        seen[key] = k + 1
        if k:  # a marker no method and not the base wears, so lora-r16 is not read as adapter
            taken = {*METHOD_MARKERS.values(), BASE_MARKER, marker}
            others = [m for m in FAMILY_MARKERS if m not in taken] or [
                m for m in FALLBACK_MARKERS if m != marker
            ]
            marker = others[(k - 1) % len(others)]
        out[name] = {"color": color, "marker": marker, "ls": LINESTYLES[k % len(LINESTYLES)]}
    return out


def legend_outside(ax_or_fig, handles=None, labels=None, **kw):
    """A legend to the right of the axes (or figure), clear of the data."""
    from matplotlib.figure import Figure

    if handles is None:
        handles, labels = (
            ax_or_fig.get_legend_handles_labels()
            if not isinstance(ax_or_fig, Figure)
            else figure_handles(ax_or_fig)
        )
    if not handles:
        return None
    opts = {"frameon": False, "loc": "upper left", "borderaxespad": 0.0}
    if isinstance(ax_or_fig, Figure):
        opts.update(
            loc="upper left", bbox_to_anchor=(1.0, 0.95), bbox_transform=ax_or_fig.transFigure
        )
    else:
        opts.update(bbox_to_anchor=(1.02, 1.0))
    opts.update(kw)
    return ax_or_fig.legend(handles, labels, **opts)


def figure_handles(fig):
    """Legend handles and labels of every axes of ``fig``, each label once (first wins)."""
    seen: dict[str, object] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen)


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
    return matplotlib.rc_context(PAPER_RC)


_SUBPLOT_ARGS = {
    "sharex",
    "sharey",
    "squeeze",
    "width_ratios",
    "height_ratios",
    "subplot_kw",
    "gridspec_kw",
}


def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """``plt.subplots`` without pyplot: a :class:`~matplotlib.figure.Figure` of its own.

    Library code must not touch pyplot's global state: ``matplotlib.use`` would switch a
    notebook user's backend, and pyplot figures stay registered (and displayed inline)
    until closed.  A bare Figure saves to PNG and PDF through the format's own canvas.
    """
    grid = {k: kwargs.pop(k) for k in list(kwargs) if k in _SUBPLOT_ARGS}
    fig = Figure(**kwargs)
    return fig, fig.subplots(nrows, ncols, **grid)


def log_axis(ax, axis: str = "y") -> None:
    """Put ``axis`` of ``ax`` on a log scale with plain-number tick labels ("0.01", "100").

    matplotlib's default log labels are mathtext (``$\\mathdefault{10^{2}}$``), which
    :data:`PAPER_RC` turns off so that names print as written; without this they would
    appear as raw TeX source."""
    from matplotlib.ticker import FuncFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    import math

    from matplotlib.ticker import LogLocator

    target.set_major_locator(LogLocator(base=10, numticks=6))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: compact_number(v)))

    def minor(v, _pos):  # label 2× and 5× only when the axis spans less than ~1.5 decades,
        lo, hi = sorted(target.get_view_interval())  # every minor tick when under half a decade
        if lo <= 0 or math.log10(hi / lo) > 1.5:
            return ""
        lead = v / 10 ** math.floor(math.log10(v) + 1e-9)
        if math.log10(hi / lo) < 0.5:  # no power of ten may be in view: label them all
            return compact_number(float(f"{v:.2g}"))
        return compact_number(v) if round(lead, 6) in (2.0, 5.0) else ""

    target.set_minor_formatter(FuncFormatter(minor))


def compact_number(v: float) -> str:
    """Short tick text: 0.01, 1, 100, 10k, 2.5M, 1G (no overlapping "1e+06" labels)."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:g}"
