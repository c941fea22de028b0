"""How a study compares: the compare settings of a study config, and the default comparer.

Shared by the cell runner, the seed-to-seed baseline and the joint report, so each of them
calls ``comparing.default_compare`` (looked up at call time: tests and callers may replace it).
"""

from __future__ import annotations

from repspace.study.config import StudyConfig

__all__ = ["compare_settings", "default_compare"]


def compare_settings(config: StudyConfig, probe: str | None = None) -> dict:
    """Keyword arguments of :func:`repspace.compare.compare` for ``config`` (``probe``: one of
    its probes; default the first): every field of its :class:`~repspace.study.config.
    CompareSettings`, the study's declared defaults included."""
    return config.compare.compare_kwargs(probe)


def default_compare(base: str, tuned: list[str], **kwargs):
    from repspace.compare import compare

    return compare(base, tuned, **kwargs)
