"""Visual domains of the shapes world: which shapes and colours exist and how a scene looks.

Two domains make a downstream task *consistent* with pre-training or *not* (Tian et al.
2024, "An Empirical Study of PEFT on Vision-Language Pre-train Models"):

* ``"source"`` — the pre-training domain: circle / square / triangle in five saturated
  colours on a plain, constant dark background.
* ``"shifted"`` — a different appearance *and* a larger label space: the source shapes plus
  diamond and cross, a palette whose red/green/blue are different shades (plus orange, purple,
  black), on a light, textured background (random tint + oriented stripes + Gaussian noise).

Design constraints relied on elsewhere (and tested):

* Every palette colour differs from every background pixel, so object colours can be read
  back from pixels exactly.  Source background is a single constant; shifted background
  pixels have every channel >= ``BG_MIN_SHIFTED`` while every shifted palette colour has a
  channel below it.
* Colour *names* are shared where it makes sense (red/green/blue in both domains) so a word
  means the same concept with a different appearance after the shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

__all__ = ["DomainSpec", "DOMAINS", "SIZES", "get_domain", "PLURALS", "BG_MIN_SHIFTED"]

#: Object sizes, as a fraction of the (smallest) grid-cell side.
SIZES: Mapping[str, float] = MappingProxyType({"small": 0.5, "large": 0.85})

#: Plural forms used by count questions ("how many circles are there?").
PLURALS: Mapping[str, str] = MappingProxyType(
    {
        "circle": "circles",
        "square": "squares",
        "triangle": "triangles",
        "diamond": "diamonds",
        "cross": "crosses",
    }
)

#: Lowest channel value of any shifted-domain background pixel (after clipping).
BG_MIN_SHIFTED = 150


@dataclass(frozen=True)
class DomainSpec:
    """Appearance and label space of one domain.

    Attributes:
        name: ``"source"`` or ``"shifted"``.
        shapes: shape names that can occur.
        colors: colour name -> RGB (uint8 triple).  Insertion order is the canonical order.
        background: ``"plain"`` (constant ``bg_rgb``) or ``"textured"``.
        bg_rgb: plain background colour, or the centre of the random tint for textured ones.
    """

    name: str
    shapes: tuple[str, ...]
    colors: Mapping[str, tuple[int, int, int]]
    background: str
    bg_rgb: tuple[int, int, int]


DOMAINS: Mapping[str, DomainSpec] = MappingProxyType(
    {
        "source": DomainSpec(
            name="source",
            shapes=("circle", "square", "triangle"),
            colors=MappingProxyType(
                {
                    "red": (230, 40, 40),
                    "green": (40, 200, 70),
                    "blue": (50, 100, 240),
                    "yellow": (240, 220, 40),
                    "white": (240, 240, 240),
                }
            ),
            background="plain",
            bg_rgb=(24, 24, 32),
        ),
        "shifted": DomainSpec(
            name="shifted",
            shapes=("circle", "square", "triangle", "diamond", "cross"),
            colors=MappingProxyType(
                {
                    "red": (170, 20, 60),
                    "green": (20, 120, 50),
                    "blue": (30, 50, 150),
                    "orange": (245, 130, 10),
                    "purple": (120, 40, 170),
                    "black": (20, 20, 20),
                }
            ),
            background="textured",
            bg_rgb=(210, 210, 210),
        ),
    }
)


def get_domain(name: str) -> DomainSpec:
    """Return the :class:`DomainSpec` called ``name`` (``"source"`` or ``"shifted"``)."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {name!r}") from None
