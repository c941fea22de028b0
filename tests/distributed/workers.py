"""Worker bodies for the multi-process tests (module-level: picklable for spawn)."""

from __future__ import annotations

import json
import os
import traceback
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


def data(n=90, p=6, q=5, seed=0):
    """Paired features with a large common offset (the hard case for the shift)."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, p)) * [1, 2, 3, 0.5, 1, 4][:p] + 1e3
    y = np.hstack([x[:, :q] * 0.7 + 0.1 * g.standard_normal((n, q)), x[:, : p - q]])[:, :p] - 5e2
    return x.astype(np.float32), y.astype(np.float32)


def init(rank, world, port, timeout=30):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=timeout))


def shards(n, world, empty_rank=None):
    """Contiguous shards; ``empty_rank`` gets none."""
    owners = [r for r in range(world) if r != empty_rank]
    cuts = np.linspace(0, n, len(owners) + 1).astype(int)
    out = {r: range(0, 0) for r in range(world)}
    for i, r in enumerate(owners):
        out[r] = range(cuts[i], cuts[i + 1])
    return out


def reduce_worker(rank, world, port, out_dir):
    """Reduce LayerwiseMoments / PairedMoments / FeatureMoments / a CompareSink sample."""
    from repspace.compare.sink import CompareSink
    from repspace.capture.sinks import CapturedBatch
    from repspace.distributed import gather_row_sample, reduce_accumulator, reduce_sink
    from repspace.statistics import FeatureMoments, LayerwiseMoments, PairedMoments

    init(rank, world, port)
    x, y = data()
    mine = shards(len(x), world, empty_rank=1)[rank]
    res = {}
    for precision in ("auto", "float64"):
        acc = LayerwiseMoments(precision=precision)
        for s in range(mine.start, mine.stop, 7):  # batches of 7 rows
            e = min(s + 7, mine.stop)
            acc.update({"a": x[s:e], "b": x[s:e, :4]}, {"a": y[s:e], "b": y[s:e, :4]})
        reduce_accumulator(acc)
        res[precision] = {
            "n": acc.n,
            "metrics": {f"{b}|{t}": v for (b, t), v in acc.compute().items()},
            "scatter": acc.base["a"].centred().scatter.tolist(),
            "cross": acc.cross["a", "a"].centred(acc.base["a"], acc.tuned["a"]).scatter.tolist(),
            "min": acc.base["a"].min.tolist(),
            "max": acc.tuned["b"].max.tolist(),
            "drift": acc.drift["a", "a"].compute(),
        }
        # the reduced accumulator keeps streaming (its shift is usable by later updates)
        acc.update({"a": x[:5], "b": x[:5, :4]}, {"a": y[:5], "b": y[:5, :4]})
        res[precision]["after_update"] = acc.compute()["a", "a"]["linear_cka"]
    pm = PairedMoments(precision="float64")
    if len(mine):
        pm.update(x[mine.start : mine.stop], y[mine.start : mine.stop])
    res["paired_cka"] = reduce_accumulator(pm).linear_cka(debiased=True)
    fm = FeatureMoments(precision="float64")
    if len(mine):
        fm.update(x[mine.start : mine.stop])
    reduce_accumulator(fm)
    res["feature_mean"] = fm.mean().tolist()
    # the compare sink: statistics plus the global bottom-k row sample
    sink = CompareSink(max_rows=20, seed=3, precision="float64", row_offset=mine.start)
    for s in range(mine.start, mine.stop, 8):
        e = min(s + 8, mine.stop)
        rows = {"base": {"L": torch.from_numpy(x[s:e])}, "tuned": {"L": torch.from_numpy(y[s:e])}}
        sink.update(CapturedBatch(sides=rows, streams={"L": "text"}, n=e - s, batch_index=s))
    reduce_sink(sink)
    gather_row_sample(sink)
    res["sink_cka"] = sink.acc.compute()["L", "L"]["linear_cka"]
    # k = 3 tuned sides sharing one base accumulator (FanOutSink), rank 1 still empty
    fan = fan_out_sinks(x, y, mine)
    for pair_sink in fan.sinks.values():
        reduce_sink(pair_sink)
    res["fan_cka"] = {
        side: s.acc.compute()["L", "L"]["linear_cka"] for side, s in fan.sinks.items()
    }
    res["sample"] = {k: v["L"].tolist() for k, v in sink.samples.items() if "L" in v}
    res["routes"] = route_results(rank, world)
    with open(os.path.join(out_dir, f"reduce{rank}.json"), "w") as f:
        json.dump(res, f)
    dist.destroy_process_group()


def wide_data(n=90, p=64, seed=1):
    """Paired features wider than a shard is long, with a large common offset."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, p)) * np.linspace(0.5, 3, p) + 1e3
    y = x @ (np.eye(p) + 0.2 * g.standard_normal((p, p))) - 5e2
    return x.astype(np.float32), y.astype(np.float32)


ROUTE_CASES = {  # width: what the global n = 90 does with it (rows: 90·2p·4 B vs 3p²·8 B)
    64: "rows",  # stays on rows: 46 kB of rows against 98 kB of moments
    16: "moments",  # each 45-row shard keeps rows (5.8 kB < 6.1 kB), the 90 rows do not
}


def route_results(rank, world):
    """Auto-routed accumulators and a shared-base fan-out, reduced (rank 1 empty)."""
    from repspace.distributed import reduce_accumulator, reduce_sink
    from repspace.statistics import LayerwiseMoments

    out = {}
    for p in ROUTE_CASES:
        x, y = wide_data(p=p)
        mine = shards(len(x), world, empty_rank=1)[rank]
        acc = LayerwiseMoments(precision="float64")
        for s in range(mine.start, mine.stop, 7):
            e = min(s + 7, mine.stop)
            acc.update({"a": x[s:e]}, {"a": y[s:e]})
        local = acc.routes().get(("a", "a"))
        reduce_accumulator(acc)
        fan = fan_out_sinks(x, y, mine)
        for pair_sink in fan.sinks.values():
            reduce_sink(pair_sink)
        out[str(p)] = {
            "local": local,
            "global": acc.routes()[("a", "a")],
            "n": acc.n,
            "metrics": acc.compute()["a", "a"],
            "fan": {side: s.acc.compute()["L", "L"]["linear_cka"] for side, s in fan.sinks.items()},
            "fan_routes": {side: s.acc.routes()[("L", "L")] for side, s in fan.sinks.items()},
        }
    return out


def fan_out_sinks(x, y, rows=None):
    """A FanOutSink of three tuned sides (y, 2y + x, y²) fed ``rows`` of the data."""
    from repspace.capture.sinks import CapturedBatch
    from repspace.compare.sink import CompareSink, FanOutSink

    rows = range(len(x)) if rows is None else rows
    fan = FanOutSink(
        {f"t{j}": CompareSink(max_rows=0, precision="float64", buffer_rows=16) for j in range(3)}
    )
    for s in range(rows.start, rows.stop, 8):
        e = min(s + 8, rows.stop)
        xb, yb = torch.from_numpy(x[s:e]), torch.from_numpy(y[s:e])
        sides = {"base": {"L": xb}, "t0": {"L": yb}, "t1": {"L": 2 * yb + xb}, "t2": {"L": yb * yb}}
        fan.update(CapturedBatch(sides=sides, streams={"L": "text"}, n=e - s, batch_index=s))
    fan.finish()
    return fan


def failing_batches(mode, rank):
    """Batches of the tiny probe; on rank 1 the second batch raises or the process dies."""
    from tests.compare.conftest import SENTENCES, word_tokenizer

    tok = word_tokenizer()
    lo, hi = (0, 24) if rank == 0 else (24, 48)

    def gen():
        for i, s in enumerate(range(lo, hi, 8)):
            if rank == 1 and i == 1:
                if mode == "raise":
                    raise OSError("probe shard unreadable: disk quota exceeded")
                os._exit(7)  # dies without a word, mid-capture
            yield dict(tok(SENTENCES[s : s + 8], padding=True, return_tensors="pt"))

    return gen


def failure_worker(rank, world, port, out_dir, mode):
    from repspace.checkpoints import LoadedCheckpoint
    from repspace.compare import compare_models
    from repspace.distributed import DistContext
    from tests.compare.conftest import tiny_bert

    init(rank, world, port, timeout=20)
    ctx = DistContext.from_env()
    base = LoadedCheckpoint("base", "base", "hf", tiny_bert(0))
    tuned = LoadedCheckpoint("other", "other", "hf", tiny_bert(1))
    try:
        compare_models(
            base,
            [tuned],
            failing_batches(mode, rank),
            batch_size=8,
            progress=False,
            embedding="none",
            dist=ctx,
            row_offset=24 * rank,
        )
        outcome = {"error": None}
    except ValueError as exc:
        outcome = {"error": str(exc), "type": type(exc).__name__}
    except Exception:  # noqa: BLE001 - the test reports what escaped
        outcome = {"error": "UNEXPECTED " + traceback.format_exc()}
    with open(os.path.join(out_dir, f"fail{rank}.json"), "w") as f:
        json.dump(outcome, f)
    os._exit(0)  # skip destroy: a peer may be gone
