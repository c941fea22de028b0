"""Worker bodies of the multi-process tracker test (module level: picklable for spawn)."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import torch

METRICS = ["linear_cka", "effective_rank", "cosine_similarity_mean", "relative_shift_mean"]


def perturb(model, seed=1):
    """The same deterministic change of every weight on every rank (its own generator)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def plain_values(model_dir, probe):
    """The framework-free tracker at steps 0 and 1 (perturbed): ``(values, batches held)``."""
    from repspace.track import Tracker
    from tests.track.conftest import load_tiny

    model = load_tiny(model_dir)
    tracker = Tracker(model, probe, batch_size=8, metrics=METRICS)
    tracker.measure(model, 0)
    perturb(model)
    return tracker.measure(model, 1), len(tracker.batches), tracker.world_size


def tracker_worker(rank, world, port, out_dir, model_dir, probe):
    """Plain Tracker, then Trainer + DDP with the callback; rank 0 writes what it saw."""
    import torch.distributed as dist

    from tests.distributed.workers import init

    out = Path(out_dir)
    try:
        torch.set_num_threads(1)
        init(rank, world, port, timeout=120)
        values, batches, world_size = plain_values(model_dir, probe)

        from repspace.track import DistortionCallback
        from tests.compare.conftest import word_tokenizer
        from tests.track.conftest import load_tiny, tracked, train

        cb = DistortionCallback(
            probe=probe,
            every_n_steps=1,
            batch_size=8,
            metrics=METRICS,
            output_dir=out / "track",
            figures=False,
        )
        trainer = train(
            load_tiny(model_dir),
            word_tokenizer(),
            out / f"trainer-{rank}",
            steps=2,
            callbacks=[cb],
            batch=4,
        )
        doc = {
            "plain": values,
            "batches": batches,
            "world_size": world_size,
            "ddp": str(type(trainer.model_wrapped).__name__),
            "trainer": cb.trajectory.last(),
            "logged": sorted(tracked(trainer)),
        }
        (out / f"rank{rank}.json").write_text(json.dumps(doc))
        if rank == 0:
            torch.save(trainer.model.state_dict(), out / "final.pt")
    except BaseException:
        (out / f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
