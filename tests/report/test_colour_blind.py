"""Every method colour (and the base's grey) stays distinguishable for colour-blind readers:
the minimum pairwise CIELAB distance of the palette, simulated for protanopia, deuteranopia
and tritanopia (Machado, Oliveira & Fernandes 2009, severity 1) and for normal vision, is
above a threshold.  Markers and line styles tell methods apart in greyscale on top of this."""

import itertools

import numpy as np
import pytest

from repspace.report.style import BASE_COLOR, FALLBACK, METHOD_COLORS

# Linear-RGB simulation matrices, severity 1.0 (Machado et al. 2009, Table 1).
SIMULATIONS = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "tritanopia": np.array(
        [
            [1.255528, -0.076749, -0.178779],
            [-0.078411, 0.930809, 0.147602],
            [0.004733, 0.691367, 0.303900],
        ]
    ),
}
# CIE76 ΔE: ~2.3 is a just-noticeable difference; 12 keeps lines apart at a glance.  The
# palette before this test had 8.5 under deuteranopia (adapter, PT-adapter, PT-LoRA and
# AdaLink the same olive).
MIN_DELTA_E = 12.0


def _srgb(hex_colour: str) -> np.ndarray:
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)])


def _linear(c):
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _gamma(c):
    c = np.clip(c, 0, 1)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _lab(srgb: np.ndarray) -> np.ndarray:
    xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    ) @ _linear(srgb)
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _closest_pair(colours: dict[str, str], simulation: np.ndarray):
    labs = {name: _lab(_gamma(simulation @ _linear(_srgb(c)))) for name, c in colours.items()}
    return min(
        (
            (float(np.linalg.norm(labs[a] - labs[b])), a, b)
            for a, b in itertools.combinations(labs, 2)
        )
    )


@pytest.mark.parametrize("vision", list(SIMULATIONS))
def test_method_colours_stay_apart(vision):
    colours = {**dict(METHOD_COLORS), "base": BASE_COLOR}
    assert len(colours) >= 10
    distance, a, b = _closest_pair(colours, SIMULATIONS[vision])
    assert distance >= MIN_DELTA_E, f"{vision}: {a} and {b} are {distance:.1f} ΔE apart"


def test_simulation_reproduces_a_known_confusion():
    """The check can fail: the earlier IA3 pink and the base grey, 40 ΔE apart for normal
    vision, are 8.5 apart under deuteranopia."""
    pair = {"ia3 (before)": "#CC79A7", "base": "#8C8C8C"}
    assert _closest_pair(pair, SIMULATIONS["normal"])[0] > 35
    assert _closest_pair(pair, SIMULATIONS["deuteranopia"])[0] < 9


def test_fallback_palette_for_unknown_names_is_distinct_for_normal_vision():
    distance, a, b = _closest_pair(dict(enumerate(FALLBACK)), SIMULATIONS["normal"])
    assert distance >= MIN_DELTA_E, (a, b, distance)


def test_lines_differ_without_colour():
    """Greyscale print or total colour blindness: every method wears its own marker, and two
    checkpoints of one family (same colour) differ in marker and line style."""
    from repspace.report.style import BASE_MARKER, METHOD_MARKERS, styles_for

    markers = [*METHOD_MARKERS.values(), BASE_MARKER]
    assert len(markers) == len(set(markers)) >= 10, markers
    names = [*METHOD_COLORS, "lora-r16", "lora-r32", "base"]
    looks = styles_for(names, base="base")
    assert len({(s["marker"], s["ls"]) for s in looks.values()}) == len(names)
