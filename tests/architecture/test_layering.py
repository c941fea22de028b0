"""The import graph of repspace points only down (docs/development.md, "Layers").

Every module belongs to a floor; a module may import modules of its own floor or of
lower floors, never of a higher one, and no set of modules imports itself in a cycle.
Function-local imports count as much as top-level ones: a lazy import still couples the
two modules.

Command-line modules have no exemption.  The rule: a CLI module sits on its package's floor
or above.  A package's ``cli`` module is on that package's floor, like every other module
there, and may import only that floor and the ones below; a command that must wire a higher
floor lives higher up (in a package on that floor, or in the top-level entry point
``repspace/cli.py``, which is on the top floor with ``study``), or is told about the higher
floor by registration from above (``repspace layers`` lists training runs because the entry
point imports ``repspace.training``, whose run loader registers with ``checkpoints``).

A package and its own modules get no exemption either: an ``__init__`` that imports a
submodule which imports the package back is a cycle like any other.  The one place a known
cycle may stand is :data:`KNOWN_CYCLES`, each entry named, explained and owned.

The graph is read from the source (an AST walk of every module), so the test needs no
import of repspace and sees every edge, even ones in code paths the suite does not run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "repspace"

# floor -> the packages / top-level modules on it (names relative to ``repspace``)
FLOORS: dict[int, tuple[str, ...]] = {
    0: (
        "_validation",
        "_constraints",
        "outputs",
        "cli_errors",
        "_profile",
        "_threads",
        "_heap",
        "layer_table",
        "devices",
        "_lazy",
        "_jsonfile",
    ),
    1: ("closed_forms", "data", "evaluation"),
    2: ("statistics", "models"),
    3: ("metrics", "distributed", "checkpoints"),
    4: ("capture", "probe"),
    5: ("methods", "report"),
    6: ("compare", "training", "track"),
    7: ("study", "demo", "cli", "cli_docs", "__main__"),
}
TOP = max(FLOORS)
FLOOR_OF = {name: floor for floor, names in FLOORS.items() for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The repspace module an import of ``name`` loads (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> set[str]:
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [f"{stem}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("repspace") else None
            if target and target != module:
                found.add(target)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def floor(module: str) -> int:
    """The floor of ``module``: its package's (or top-level module's) entry in FLOORS; the
    package ``repspace`` itself (``__version__``) is the whole house, the top floor."""
    parts = module.split(".")
    if module == "repspace":
        return TOP
    if len(parts) < 2 or parts[1] not in FLOOR_OF:
        raise KeyError(module)
    return FLOOR_OF[parts[1]]


def test_every_module_has_a_floor():
    unplaced = sorted({m.split(".")[1] for m in MODULES if m != "repspace"} - set(FLOOR_OF))
    assert not unplaced, f"give these a floor in FLOORS (and in docs/development.md): {unplaced}"


def test_imports_only_point_down():
    upward = [
        f"{m} (floor {floor(m)}) imports {t} (floor {floor(t)})"
        for m, targets in sorted(GRAPH.items())
        for t in sorted(targets)
        if floor(t) > floor(m) and not m.startswith(t + ".")
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


# Cycles known today, each a set of modules -> why it is tolerated and who removes it.  An
# entry is a debt, not a rule: once its cycle is gone, test_known_cycles_are_still_there
# warns, and the entry goes.
KNOWN_CYCLES: dict[frozenset[str], str] = {
    # none today; an entry names the modules, says why the cycle stands and who removes it
}


def test_no_import_cycles():
    cycles = [c for c in _cycles(GRAPH) if frozenset(c) not in KNOWN_CYCLES]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_known_cycles_are_still_there():
    """A known cycle that is gone leaves its entry behind: a warning, not a failure, so that
    the fix and the removal of its entry need not land in one commit."""
    import warnings

    found = {frozenset(c) for c in _cycles(GRAPH)}
    for members, why in KNOWN_CYCLES.items():
        if not any(members <= c for c in found):
            warnings.warn(
                f"KNOWN_CYCLES: {why!r} is no longer a cycle; delete its entry "
                "(tests/architecture/test_layering.py)",
                stacklevel=1,
            )


def test_the_walker_sees_function_local_and_relative_imports():
    """The test above can fail: a lazy upward import and a relative import are edges."""
    assert "repspace.checkpoints.loader" in GRAPH["repspace.capture.cli"]
    fake = ast.parse("def f():\n    from repspace.study import runner\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(fake))
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["repspace.metrics.cka", "repspace.statistics.layerwise"])
def test_known_edges_are_seen(module):
    assert GRAPH[module], f"{module} imports nothing according to the walker"


def test_a_cli_module_sits_on_its_packages_floor():
    """No blanket exemption: a package's command module is placed like its siblings, so an
    upward import from it (capture/cli.py once imported repspace.training) fails the test."""
    clis = [m for m in MODULES if m.endswith(".cli") and m.count(".") > 1]
    assert "repspace.capture.cli" in clis
    for m in clis:
        package = m.rpartition(".")[0]
        assert floor(m) == floor(package), m
    assert floor("repspace.cli") == TOP


def test_a_package_and_its_modules_can_form_a_cycle():
    """The re-export exemption is gone: an __init__ importing a submodule that imports the
    package back is reported (what the known adapter cycle looked like)."""
    graph = {"p": {"p.a"}, "p.a": {"p"}, "p.b": {"p"}}
    assert _cycles(graph) == [["p", "p.a"]]


@pytest.mark.slow  # a fresh interpreter importing transformers: seconds, 29 s at load 6
def test_the_entry_point_registers_the_run_loader_for_layers():
    """``repspace layers RUN`` lists a training run although capture/cli.py sits below
    training: the entry point imports repspace.training for it (LOADS_RUNS)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from repspace.cli import main\n"
        "main(['layers', sys.argv[1]])\n"
        "from repspace.checkpoints.loader import RUN_FORMATS, _MANIFEST_LOADERS\n"
        "print(sorted(set(RUN_FORMATS) & set(_MANIFEST_LOADERS)))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT.parent), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "no-such-model")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.stdout.strip().splitlines()[-1] == "['repspace.full', 'repspace.trainable']", (
        out.stdout + out.stderr
    )
