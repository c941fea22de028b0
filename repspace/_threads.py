"""How many intra-op threads every command that computes gives torch (`compare`, `weights`,
`train`, `study`, `demo`; `pretrain` has its own default of one thread, see
docs/embedded_model.md).

Small models train faster on one thread: their matrices are too small for a second thread to
pay for its synchronisation, and on a machine that is busy with anything else the second
thread mostly waits.  Measured on a 2-core machine: a batch-64 step of the embedded tiny
BLIP (hidden 96) took 0.24 s on 1 thread and 0.47-0.94 s on 2 (docs/embedded_model.md);
``repspace train`` of it ran 2.3x faster on one thread.  Larger models use every core.

The choice, in order:
1. ``--threads N`` (or ``threads=N``): exactly N;
2. ``OMP_NUM_THREADS`` set in the environment: torch already follows it, nothing changes;
3. a base whose widest hidden size is at most :data:`SMALL_HIDDEN`: one thread;
4. otherwise torch's default (one per core).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = [
    "SMALL_HIDDEN",
    "THREADS_HELP",
    "add_threads_option",
    "apply_threads",
    "check_threads",
    "choose_threads",
    "hidden_size_of",
    "max_threads",
]

SMALL_HIDDEN = 256  # the embedded model's 96 and the test models' 32 are far below it
# One help text for every command's --threads (docs/cli.md is generated from it).
THREADS_HELP = ("torch intra-op threads (default: 1 for small bases such as the embedded model, "
                "else every core; OMP_NUM_THREADS is honoured); on a busy machine --threads 1 "
                "is often faster (docs/benchmarks.md, threads)")
_WIDTH_KEYS = ("hidden_size", "d_model", "n_embd", "dim")


def _widths(config: dict) -> list[int]:
    out = [v for k, v in config.items() if k in _WIDTH_KEYS and isinstance(v, int) and not isinstance(v, bool)]
    for sub in config.values():
        if isinstance(sub, dict):
            out += _widths(sub)
    return out


def hidden_size_of(folder: str | Path) -> int | None:
    """The widest hidden size in ``folder``'s config.json (read as plain JSON; nothing is
    loaded), or ``None`` when it cannot be told (a hub id, no config).  Callers resolve
    names such as ``embedded`` to their folder first."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    widths = _widths(config) if isinstance(config, dict) else []
    return max(widths) if widths else None


THREADS_PER_CORE = 4  # more threads than this per core only oversubscribe (and torch's
# thread pool crashes, exit 139, at some hundred thousand)


def max_threads() -> int:
    """The most threads ``--threads`` accepts on this machine: 4 per core it may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return THREADS_PER_CORE * max(cores, os.cpu_count() or 1, 1)


def check_threads(requested, option: str = "--threads") -> None:
    """A thread count torch can run: a positive integer, at most :func:`max_threads`."""
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"{option} must be a positive integer; got {requested!r}")
    limit = max_threads()
    if requested > limit:
        raise ValueError(f"{option} {requested}: this machine has {os.cpu_count()} CPU core(s); "
                         f"give at most {limit} ({THREADS_PER_CORE} per core), or leave it out "
                         "for repspace's choice")


def choose_threads(base: str | Path | None = None, requested: int | None = None) -> int | None:
    """Threads to set (see the module docstring), or ``None`` to leave torch's setting."""
    if requested is not None:
        check_threads(requested)
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    width = hidden_size_of(base) if base is not None else None
    if width is not None and width <= SMALL_HIDDEN:
        return 1
    return None


def apply_threads(base: str | Path | None = None, requested: int | None = None) -> int:
    """Set torch's intra-op threads by :func:`choose_threads`; returns the count in use."""
    import torch

    n = choose_threads(base, requested)
    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def add_threads_option(parser) -> None:
    """``--threads N`` with the one help text (checked at the CLI door, repspace/cli.py)."""
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)
