"""Studies: a grid of fine-tuning runs (methods × budgets × data fractions × seeds × tasks),
each compared with the base, cached per cell, summarised in tables and figures.

    from repspace.study import load_study_config, run_study
    result = run_study(load_study_config("study.toml"))
    result.tables.summary        # means and 95 % CIs over seeds

CLI: ``repspace study CONFIG [-o OUT] [--force] [--dry-run]``; ``repspace demo`` runs the
preset in ``repspace/study/presets/demo.toml``.
"""

from repspace._lazy import lazy_attributes

# name -> module (loaded on first use, PEP 562): the CLI registers `repspace study` without
# importing the runner, figures and scipy
_LAZY = {
    **dict.fromkeys(
        ("BASE_METHOD", "CompareSettings", "StudyConfig", "load_study_config"),
        "repspace.study.config",
    ),
    **dict.fromkeys(("Cell", "cell_key", "expand_grid", "train_config_for"), "repspace.study.grid"),
    **dict.fromkeys(
        ("StudyTables", "aggregate", "build_tables", "mean_ci"), "repspace.study.results"
    ),
    **dict.fromkeys(
        ("PlannedCell", "StudyResult", "plan_study", "run_study"), "repspace.study.runner"
    ),
}

__all__ = [
    "BASE_METHOD",
    "CompareSettings",
    "StudyConfig",
    "load_study_config",
    "Cell",
    "cell_key",
    "expand_grid",
    "train_config_for",
    "StudyTables",
    "aggregate",
    "build_tables",
    "mean_ci",
    "PlannedCell",
    "StudyResult",
    "plan_study",
    "run_study",
    "preset_path",
]


def preset_path(name: str = "demo"):
    """Path of a study preset shipped with repspace (``repspace/study/presets/<name>.toml``)."""
    from pathlib import Path

    path = Path(__file__).parent / "presets" / f"{name}.toml"
    if not path.is_file():
        raise ValueError(
            f"no study preset {name!r}; shipped: "
            f"{', '.join(p.stem for p in path.parent.glob('*.toml'))}"
        )
    return path


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
