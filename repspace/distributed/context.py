"""Who am I in a multi-process run: rank, world size, sharding and failure agreement.

A run is distributed when ``torch.distributed`` is already initialised, or when the
environment says so (``WORLD_SIZE > 1``, as set by ``torchrun``).  Backend: NCCL when
the run computes on CUDA, gloo otherwise.

Failures are agreed on, never left to hang: every phase that can fail on one rank only
(loading, capture, the metrics on rank 0) runs inside :meth:`DistContext.step`, which
catches the rank's own exception, all-reduces a failure flag (MAX) and, when any rank
failed, raises the same one-line ``ValueError("rank K failed during <phase>: …")`` on
every rank.  A rank that dies without raising (killed, ``os._exit``) breaks the next
collective; the surviving ranks turn that into ``ValueError("rank R: lost contact with
the other ranks during <phase> …")`` — within ``timeout`` seconds at worst, at once
when the dead peer's socket closes (gloo).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistContext", "RankFailedError", "batch_shard", "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 600.0


class RankFailedError(ValueError):
    """Some rank failed; raised identically on every rank (a ``ValueError``: one-line CLI error)."""


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _backend_reason(exc: BaseException) -> str:
    """A backend error's first sentence, without gloo's ``[file.cc:123]`` prefix."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(exc))
    return text.split(". ")[0].rstrip(".")


def batch_shard(n: int, batch_size: int, rank: int, world_size: int) -> range:
    """This rank's contiguous share of ``n`` samples, cut on batch boundaries.

    With B = ⌈n / batch_size⌉ batches, rank r gets batches ⌊rB/W⌋ … ⌊(r+1)B/W⌋ − 1, so the
    ranks' batches, concatenated in rank order, are exactly the single-process batches
    (same padding, same rows, same order).  Ranks beyond B get an empty range.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    batches = -(-n // batch_size)
    lo, hi = rank * batches // world_size, (rank + 1) * batches // world_size
    return range(min(lo * batch_size, n), min(hi * batch_size, n))


@dataclass
class DistContext:
    """A process group and this process's place in it.

    ``device`` is where collective buffers live (``cuda:<local rank>`` for NCCL, else CPU).
    ``owns_group``: this context initialised the group and :meth:`close` destroys it.
    """

    rank: int
    world_size: int
    backend: str
    device: torch.device
    local_rank: int = 0
    group: object = None
    owns_group: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    phase: str = field(default="start", repr=False)

    # -- set-up -----------------------------------------------------------------------
    @classmethod
    def from_env(
        cls, device: str | None = None, timeout_s: float | None = None
    ) -> "DistContext | None":
        """The running group, or a new one from torchrun's environment; None when single-process."""
        timeout_s = float(timeout_s or os.environ.get("REPSPACE_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))

        def joined(backend: str, owns_group: bool) -> "DistContext":
            return cls(
                dist.get_rank(),
                dist.get_world_size(),
                backend,
                cls._comm_device(backend, local_rank),
                local_rank,
                owns_group=owns_group,
                timeout_s=timeout_s,
            )

        if dist.is_available() and dist.is_initialized():
            return joined(dist.get_backend(), owns_group=False)
        if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
            return None
        if not dist.is_available():
            raise ValueError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        want_cuda = str(device or "cpu").startswith(("cuda", "auto")) and torch.cuda.is_available()
        backend = "nccl" if want_cuda and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"could not join the process group ({backend}, MASTER_ADDR="
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}): "
                f"{_first_line(exc)}"
            ) from None
        return joined(backend, owns_group=True)

    @staticmethod
    def _comm_device(backend: str, local_rank: int) -> torch.device:
        return torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")

    def close(self, barrier: bool = False) -> None:
        """Destroy the process group if this context created it; with ``barrier`` (only when
        every rank is known to reach this call), after all ranks have arrived."""
        if self.owns_group and dist.is_initialized():
            if barrier and self.world_size > 1:
                dist.barrier()
                self._all_left_the_barrier()
            dist.destroy_process_group()
            self.owns_group = False

    def _all_left_the_barrier(self) -> None:
        """Wait, through the rendezvous store (not gloo), until every rank has returned from
        the closing barrier.  A rank returns from a gloo barrier once it has *received* its
        peers' messages, while its own last send may still be in flight; a peer that tears its
        pairs down then makes that send fail in a gloo thread, which aborts the process
        (SIGABRT, 'terminate called without an active exception').  Best effort: a store that
        is gone (its host rank already left) means everyone had arrived."""
        import time

        try:
            from torch.distributed.distributed_c10d import _get_default_store

            store = _get_default_store()
            store.add("repspace/closed", 1)
            deadline = time.monotonic() + min(self.timeout_s, 60.0)
            while store.add("repspace/closed", 0) < self.world_size:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)
        except Exception:  # noqa: BLE001 - no store, or it closed: nothing left to wait for
            return

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def compute_device(self, device: str | None) -> str | None:
        """The device this rank computes on: ``cuda``/``auto`` become ``cuda:<local rank>``."""
        if device in ("cuda", "auto") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return device

    def shard(self, n: int, batch_size: int) -> range:
        return batch_shard(n, batch_size, self.rank, self.world_size)

    # -- failure agreement -----------------------------------------------------------
    @contextmanager
    def collective(self, phase: str):
        """Turn a broken collective (dead or hung peer) into a one-line ``ValueError``."""
        self.phase = phase
        try:
            yield
        except RankFailedError:
            raise
        except RuntimeError as exc:  # DistBackendError, gloo "Connection closed by peer", timeouts
            raise RankFailedError(
                f"rank {self.rank}: lost contact with the other ranks during {phase} "
                f"({_backend_reason(exc)}); another rank probably died — see its log"
            ) from None

    def agree(self, phase: str, error: BaseException | None) -> None:
        """All ranks learn whether any rank failed; if so every rank raises the same error."""
        with self.collective(phase):
            flag = torch.tensor([1.0 if error is not None else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
            if flag.item() == 0:
                return
            mine = None if error is None else _first_line(error)
            messages: list = [None] * self.world_size
            dist.all_gather_object(messages, mine, group=self.group)
        rank, message = next((r, m) for r, m in enumerate(messages) if m is not None)
        raise RankFailedError(f"rank {rank} failed during {phase}: {message}") from (
            error if error is not None and rank == self.rank else None
        )

    @contextmanager
    def step(self, phase: str):
        """Run a block that may fail on some ranks; then agree (see :meth:`agree`).

        The block's exception is held until every rank has reported, so no rank is left
        waiting in a collective for a rank that already gave up.
        """
        error = None
        self.phase = phase
        try:
            yield
        except RankFailedError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to every rank, then re-raised
            error = exc
        self.agree(phase, error)

    def broadcast_object(self, obj, phase: str):
        """``obj`` from rank 0 on every rank (pickled)."""
        with self.collective(phase):
            box = [obj if self.is_main else None]
            dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]
