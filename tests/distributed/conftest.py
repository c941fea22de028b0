import multiprocessing
import socket

import pytest

from tests.compare.conftest import base_dir, lora_dir, probe_file  # noqa: F401 - shared fixtures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(target, world, *args, timeout=120):
    """Start ``target(rank, world, port, *args)`` in ``world`` spawned processes; wait for all."""
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=target, args=(r, world, port, *args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
            pytest.fail(f"a worker of {target.__name__} hung for {timeout} s")
    return [p.exitcode for p in procs]
