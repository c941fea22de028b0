"""Studies: a grid of fine-tuning runs (methods × budgets × data fractions × seeds × tasks),
each compared with the base, cached per cell, summarised in tables and figures.

    from repspace.study import load_study_config, run_study
    result = run_study(load_study_config("study.toml"))
    result.tables.summary        # means and 95 % CIs over seeds

CLI: ``repspace study CONFIG [-o OUT] [--force] [--dry-run]``; ``repspace demo`` runs the
preset in ``repspace/study/presets/demo.toml``.
"""
from repspace.study.config import BASE_METHOD, CompareSettings, StudyConfig, load_study_config
from repspace.study.grid import Cell, cell_key, expand_grid, train_config_for
from repspace.study.results import StudyTables, aggregate, build_tables, mean_ci
from repspace.study.runner import PlannedCell, StudyResult, plan_study, run_study

__all__ = ["BASE_METHOD", "CompareSettings", "StudyConfig", "load_study_config", "Cell",
           "cell_key", "expand_grid", "train_config_for", "StudyTables", "aggregate",
           "build_tables", "mean_ci", "PlannedCell", "StudyResult", "plan_study", "run_study",
           "preset_path"]


def preset_path(name: str = "demo"):
    """Path of a study preset shipped with repspace (``repspace/study/presets/<name>.toml``)."""
    from pathlib import Path

    path = Path(__file__).parent / "presets" / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"no study preset {name!r}; shipped: "
                         f"{', '.join(p.stem for p in path.parent.glob('*.toml'))}")
    return path
