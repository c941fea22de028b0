"""How many intra-op threads every command that computes gives torch (`compare`, `weights`,
`train`, `study`, `demo`; `pretrain` has its own default of one thread, see
docs/embedded_model.md).

Small models train faster on one thread: their matrices are too small for a second thread to
pay for its synchronisation, and on a machine that is busy with anything else the second
thread mostly waits.  Measured on a 2-core machine: a batch-64 step of the embedded tiny
BLIP (hidden 96) took 0.24 s on 1 thread and 0.47-0.94 s on 2 (docs/embedded_model.md);
``repspace train`` of it ran 2.3x faster on one thread.

Larger models: ``train``, ``study`` and ``demo`` use torch's default, one thread per core,
whatever the machine is doing, because the count changes a training run's numbers: a
training step of a 384-wide BERT gave different weights on 1 and 2 threads (the forward
did not), so a run must not depend on the load.  ``compare`` and ``weights`` only run
forwards, bit-identical on any count (tests/compare/test_first_hour_fixes.py), so they use
the cores that are free (``adapt_to_load``): torch's OpenMP threads wait for each other at
every operation, and a thread that shares its core with another job stalls all of them.  On
the shared 2-core machine a MiniLM compare took 27 s on one thread and 229 s on two at a
load average of 7.5 (8.4x), 66 s and 446 s with two more busy processes (6.8x;
benchmarks/bench_threads.py, docs/benchmarks.md).  Free cores are the usable cores less the
1-minute load average, rounded, at least one: an idle machine gets every core.  On a busy
machine, ``--threads 1`` makes training several times faster too (issue 27: 0.8-1.0 s per
MiniLM step instead of 3.0-3.7 s), at the price of other numbers than a 2-thread run.

The choice, in order:
1. ``--threads N`` (or ``threads=N``): exactly N;
2. ``OMP_NUM_THREADS`` set in the environment: torch already follows it, nothing changes;
3. a base whose widest hidden size is at most :data:`SMALL_HIDDEN`: one thread;
4. ``compare`` and ``weights`` (``adapt_to_load``): one thread per free core
   (:func:`free_cores`), torch's default when every core is free or the load cannot be read;
5. otherwise torch's default (one per core).
"""

from __future__ import annotations

import os
from pathlib import Path

from repspace._jsonfile import JSONFileError, read_json

__all__ = [
    "MEASURE_THREADS_HELP",
    "SMALL_HIDDEN",
    "THREADS_HELP",
    "add_threads_option",
    "apply_threads",
    "check_threads",
    "choose_threads",
    "free_cores",
    "hidden_size_of",
    "max_threads",
    "usable_cores",
]

SMALL_HIDDEN = 256  # the embedded model's 96 and the test models' 32 are far below it
# One help text for every command's --threads (docs/cli.md is generated from it).
THREADS_HELP = (
    "torch intra-op threads (default: 1 for small bases such as the embedded model, "
    "else every core; OMP_NUM_THREADS is honoured); on a busy machine --threads 1 "
    "is often several times faster (docs/benchmarks.md, threads)"
)
# compare and weights: their results do not depend on the count, so they follow the load
MEASURE_THREADS_HELP = (
    "torch intra-op threads (default: 1 for small bases such as the embedded "
    "model, else one per core not busy with other work, by the 1-minute "
    "load average; OMP_NUM_THREADS is honoured)"
)
_WIDTH_KEYS = ("hidden_size", "d_model", "n_embd", "dim")


def _widths(config: dict) -> list[int]:
    out = [
        v
        for k, v in config.items()
        if k in _WIDTH_KEYS and isinstance(v, int) and not isinstance(v, bool)
    ]
    for sub in config.values():
        if isinstance(sub, dict):
            out += _widths(sub)
    return out


def hidden_size_of(folder: str | Path) -> int | None:
    """The widest hidden size in ``folder``'s config.json (read as plain JSON; nothing is
    loaded), or ``None`` when it cannot be told (a hub id, no config).  Callers resolve
    names such as ``embedded`` to their folder first."""
    try:
        # a pipe, a huge or hostile file: the loader refuses it later with a message naming it
        config = read_json(Path(folder) / "config.json", max_bytes=16 << 20)
    except JSONFileError:
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
        raise ValueError(
            f"{option} {requested}: this machine has {os.cpu_count()} CPU core(s); "
            f"give at most {limit} ({THREADS_PER_CORE} per core), or leave it out "
            "for repspace's choice"
        )


def choose_threads(
    base: str | Path | None = None, requested: int | None = None, *, adapt_to_load: bool = False
) -> int | None:
    """Threads to set (see the module docstring), or ``None`` to leave torch's setting.
    ``adapt_to_load``: only the free cores (for commands whose results do not depend on
    the count: forwards only)."""
    if requested is not None:
        check_threads(requested)
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    width = hidden_size_of(base) if base is not None else None
    if width is not None and width <= SMALL_HIDDEN:
        return 1
    free = free_cores() if adapt_to_load else None
    if free is not None and free < usable_cores():
        return free
    return None


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def free_cores() -> int | None:
    """Usable cores less the 1-minute load average (other jobs), rounded, at least 1; None
    when the load cannot be read."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = usable_cores()
    return max(1, min(cores, int(cores - load + 0.5)))


def apply_threads(
    base: str | Path | None = None, requested: int | None = None, *, adapt_to_load: bool = False
) -> int:
    """Set torch's intra-op threads by :func:`choose_threads`; returns the count in use."""
    import torch

    n = choose_threads(base, requested, adapt_to_load=adapt_to_load)
    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def add_threads_option(parser, *, adapt_to_load: bool = False) -> None:
    """``--threads N`` with the policy's help text (checked at the CLI door, repspace/cli.py);
    ``adapt_to_load`` for the commands that follow the load (compare, weights)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help=MEASURE_THREADS_HELP if adapt_to_load else THREADS_HELP,
    )
