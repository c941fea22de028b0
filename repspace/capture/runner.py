"""The batch loop: run base (and tuned) models on the same batches, pool, feed a sink.

>>> from repspace.capture import capture_paired
>>> sink = capture_paired(base, tuned, {"input_ids": ids, "attention_mask": mask},
...                       layers="blocks", pooling="mean", batch_size=64)
>>> sink.acc.n                      # LayerwiseMoments fed batch by batch

Deterministic: batches keep their order, dropout is off (``eval()``), token
subsampling is seeded by ``(seed, batch index)``.  Forward passes run under
``torch.inference_mode`` and stop after the last requested layer (``early_stop``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from repspace._heap import HeapTrimmer
from repspace._profile import add_time, stage, timed_iter
from repspace.capture.hooks import LayerCapture
from repspace.capture.inputs import (
    batch_hash,
    batch_rows,
    chain_hash,
    check_input_keys,
    iter_batches,
)
from repspace.devices import resolve_device
from repspace.capture.model_view import model_view
from repspace.capture.pooling import Pooling, pool_states
from repspace.capture.selection import LayerSpec, resolve_layers, resolve_paired_layers
from repspace.capture.sinks import AccumulatorSink, CapturedBatch, MemorySink
from repspace.capture.tokens import (
    align_tokens,
    image_token_id,
    layer_stream,
    num_virtual_tokens,
    task_ids_needed,
)

__all__ = [
    "AdapterDisabled",
    "AdapterInactiveWarning",
    "capture",
    "capture_paired",
    "capture_sides",
    "describe_model",
    "check_distinct",
    "inactive_adapter_warning",
]

Inputs = Mapping[str, object] | Iterable[Mapping[str, object]]


class AdapterInactiveWarning(UserWarning):
    """The tuned model's states equal the base model's bit for bit at every layer."""


@dataclass(frozen=True)
class AdapterDisabled:
    """A capture side that runs ``model`` inside ``switch.disable_adapter()``: the base model
    read from the tuned one, without loading a second copy (see
    :mod:`repspace.compare.shared_base` for when that *is* the base).

    ``model``: the module the forward runs on (the PEFT model, or its backbone when the
    heads were stripped); ``switch``: the ``PeftModel`` whose adapters are turned off.
    Sides holding the same ``model`` share one set of hooks: a hook fires in every forward
    of its module, so two captures on one module tree would see each other's states.
    """

    model: nn.Module
    switch: nn.Module


def inactive_adapter_warning(subject: str, n_layers: int) -> AdapterInactiveWarning:
    """The warning for a tuned model (``subject``, e.g. "the tuned model (BertModel)") whose
    states equalled the base's at all ``n_layers`` captured layers."""
    return AdapterInactiveWarning(
        f"{subject} produced states bit-identical to the base model at every captured layer "
        f"({n_layers}); the adapter is probably not active (zero-initialised LoRA B, "
        "disable_adapter(), wrong active adapter) or the same weights were passed twice"
    )


def check_distinct(base: nn.Module, tuned: nn.Module, subject: str = "base and tuned") -> None:
    """Refuse a tuned model that *is* the base object (``subject`` names the pair)."""
    if base is tuned:
        raise ValueError(
            f"{subject} are the same object; PEFT's get_peft_model modifies the "
            "model in place — build the base model separately (or deepcopy it first)"
        )


def describe_model(model: nn.Module) -> dict:
    """JSON-able identity of a model for manifests: classes, checkpoint path, PEFT types."""
    root = model_view(model).root
    cfg = getattr(root, "config", None)
    peft = getattr(model, "peft_config", None)
    return {
        "class": type(model).__name__,
        "architecture": type(root).__name__,
        "name_or_path": str(getattr(cfg, "_name_or_path", "") or ""),
        "peft": sorted(str(getattr(c.peft_type, "value", c.peft_type)) for c in peft.values())
        if isinstance(peft, dict)
        else [],
    }


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def capture_sides(
    models: dict[str, nn.Module],
    inputs: Inputs,
    names: list[str],
    *,
    pooling,
    sink,
    batch_size: int,
    device,
    progress: bool,
    early_stop: bool,
    task_id: int | None = None,
    tap=None,
) -> tuple[object, dict]:
    """Run every model of ``models`` (side name -> model) on each batch and feed ``sink``.

    ``names``: resolved canonical layer names, present in every model.  Returns ``(sink,
    identical)``; ``identical`` (layer -> bool) compares sides ``"base"`` and ``"tuned"``
    when there are exactly those two, else it is empty.  :func:`capture` and
    :func:`capture_paired` are the one- and two-model front ends.

    ``task_id``: the task of task-conditioned adapters (peft multitask prompt tuning, Poly),
    passed to those models only as ``task_ids`` (one per sample); required when one is there.

    ``tap(side, layer, states, batch, stream, n_virtual, image_token, sample_offset)``, if
    given, also receives every layer's states as captured, before virtual tokens are
    stripped and before pooling (per-segment analyses from the same forward passes).
    """
    pool = Pooling.of(pooling)
    off = {s: m.switch for s, m in models.items() if isinstance(m, AdapterDisabled)}
    models = {s: m.model if isinstance(m, AdapterDisabled) else m for s, m in models.items()}
    if device is not None:
        dev = resolve_device(device)
        for m in models.values():
            m.to(dev)
    devices = {s: _model_device(m) for s, m in models.items()}
    # A disabled adapter prepends nothing and takes no task ids: the base forward runs.
    virtual = {s: 0 if s in off else num_virtual_tokens(m) for s, m in models.items()}
    image_ids = {s: image_token_id(m) for s, m in models.items()}
    tasks = {s: None if s in off else task_ids_needed(m, task_id, s) for s, m in models.items()}
    described = {s: describe_model(m) for s, m in models.items()}
    for s in off:
        described[s]["adapter_disabled"] = True
    info = {"models": described, "layers": names, "sides": list(models), "pooling": pool.describe()}
    done = sink.start(info)
    batches, total = iter_batches(inputs, batch_size)
    checked: set[frozenset] = set()
    stream_cache: dict[tuple, str] = {}  # structural lookups, once per (side, layer, keys)
    identical = dict.fromkeys(names, True)
    chain, offset, seen = "", 0, 0
    rows_checked = False
    trim = HeapTrimmer()
    with ExitStack() as stack:
        caps: dict[str, LayerCapture] = {}
        for s, m in models.items():
            twin = next((t for t in caps if models[t] is m), None)
            caps[s] = (
                caps[twin]
                if twin is not None
                else stack.enter_context(LayerCapture(m, names, early_stop=early_stop))
            )
        bar = stack.enter_context(
            tqdm(total=total, disable=not progress, desc="capture", unit="batch", leave=False)
        )
        for i, batch in enumerate(timed_iter(batches)):
            bar.update(1)
            seen = i + 1
            keys = frozenset(batch) if isinstance(batch, Mapping) else None
            if keys not in checked:
                for m in models.values():
                    check_input_keys(m, batch)
                checked.add(keys)
            n, h = batch_rows(batch), batch_hash(batch)
            if i < done:  # already stored by an interrupted run: verify, skip
                chain = chain_hash(chain, h)
                if i == done - 1 and chain != sink.resume_hash:
                    raise ValueError(
                        f"the first {done} input batches differ from those of the "
                        "interrupted capture being resumed; pass the same inputs in "
                        "the same order, or overwrite=True to start again"
                    )
                offset += n
                continue
            sides, index, streams = {}, {}, {}
            for side, cap in caps.items():
                on_dev = {
                    k: v.to(devices[side]) if torch.is_tensor(v) else v for k, v in batch.items()
                }
                if tasks[side] is not None:
                    on_dev["task_ids"] = torch.full(
                        (n,), tasks[side], dtype=torch.long, device=devices[side]
                    )
                with (
                    stage("forward"),
                    off[side].disable_adapter() if side in off else nullcontext(),
                ):
                    raw = cap.forward(on_dev)
                sides[side], index[side] = {}, {}
                pooling_started = time.perf_counter()
                for name, states in raw.items():
                    ck = (side, name, keys)
                    if ck not in stream_cache:
                        stream_cache[ck] = layer_stream(models[side], name, batch)
                    streams[name] = stream_cache[ck]
                    if tap is not None:
                        tap(
                            side,
                            name,
                            states,
                            on_dev,
                            streams[name],
                            virtual[side],
                            image_ids[side],
                            offset,
                        )
                    states, valid = align_tokens(
                        name,
                        states,
                        on_dev,
                        streams[name],
                        virtual[side],
                        image_token=image_ids[side],
                        modality=pool.modality,
                    )
                    rows, idx = pool_states(
                        states, valid, pool, layer=name, batch_index=i, sample_offset=offset
                    )
                    sides[side][name] = rows
                    if idx is not None:
                        index[side][name] = idx
                # every layer's full states, freed before the next side's forward (they would
                # otherwise live through it: 2 x the states of every captured layer at peak)
                raw = states = valid = None
                add_time("pooling", time.perf_counter() - pooling_started)
            if not rows_checked and n > 1:
                rows_checked = True
                _check_rows_differ(next(iter(sides.values())), pool, n)
            if len(sides) == 2:
                for name in names:
                    if identical[name]:
                        identical[name] = torch.equal(
                            sides["base"][name].cpu(), sides["tuned"][name].cpu()
                        )
            with stage("statistics"):
                sink.update(
                    CapturedBatch(
                        sides=sides,
                        streams=streams,
                        n=n,
                        batch_index=i,
                        hash=h,
                        index=index if pool.mode == "tokens" else {},
                    )
                )
            trim()  # the batch's activations are free now: give their pages back
            offset += n
    if seen < done:
        raise ValueError(
            f"the resumed capture already holds {done} batches but the inputs have "
            f"only {seen}; pass the same inputs as the interrupted run"
        )
    with stage("statistics"):
        sink.finish()
    return sink, identical if seen > done else {}


def _check_rows_differ(rows: dict[str, torch.Tensor], pool: Pooling, n: int) -> None:
    """Refuse a pooling that gives every sample the same row at every layer (checked on the
    first batch): all metrics would be NaN or meaningless.  The usual cause is ``first`` or
    ``cls`` on a causal model, whose first token is BOS and sees nothing after it."""
    if pool.mode in ("tokens", "none") or not rows:
        return
    same = [name for name, r in rows.items() if r.shape[0] > 1 and bool((r == r[:1]).all())]
    if len(same) == len(rows):
        raise ValueError(
            f"pooling '{pool.mode}' gives the same row for all {n} samples of the "
            f"first batch at every captured layer (e.g. {same[0]!r}; a "
            "causal model's first token is its BOS and sees nothing after it); use "
            "--pooling mean or last"
        )
    if same:
        # Some layers only: e.g. `first` on a VLM, whose vision tower's first patch differs
        # per image while its causal text stream starts with the same BOS/template token.
        # Their metrics would be undefined (NaN), so they are refused, named, not reported.
        shown = ", ".join(repr(x) for x in same[:3]) + (
            f" and {len(same) - 3} more" if len(same) > 3 else ""
        )
        raise ValueError(
            f"pooling '{pool.mode}' gives the same row for all {n} samples of the "
            f"first batch at {len(same)} of {len(rows)} captured layers ({shown}); "
            "use --pooling mean or last, or leave those layers out (--layers)"
        )


def capture(
    model: nn.Module,
    inputs: Inputs,
    layers: LayerSpec,
    *,
    pooling: str | Pooling = "mean",
    sink=None,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
    early_stop: bool = True,
    side: str = "base",
):
    """Capture ``layers`` of one model over ``inputs``; returns the sink.

    Parameters
    ----------
    inputs : ``{key: Tensor (n, ...)}`` (split into ``batch_size`` batches) or an
        iterable of batch mappings.
    layers : names / globs / regexes / presets (:mod:`repspace.capture.selection`).
    pooling : ``"mean"``, ``"first"``, ``"cls"``, ``"last"``, ``"tokens"``, ``"none"``
        or a :class:`Pooling` (e.g. ``Pooling("tokens", max_tokens=32, seed=0)``).
    sink : :class:`MemorySink` (default) or :class:`DiskSink`.
    device : ``"cpu"``, ``"cuda"``, ``"mps"``, ``"auto"``; moves the model.  ``None``
        keeps it where it is and sends inputs to its device.
    early_stop : stop each forward pass after the last requested layer.
    side : name of this model in the sink (``sink.tensors[side]``).
    """
    names = resolve_layers(model, layers)
    sink = MemorySink() if sink is None else sink
    return capture_sides(
        {side: model},
        inputs,
        names,
        pooling=pooling,
        sink=sink,
        batch_size=batch_size,
        device=device,
        progress=progress,
        early_stop=early_stop,
    )[0]


def capture_paired(
    base: nn.Module,
    tuned: nn.Module,
    inputs: Inputs,
    layers: LayerSpec,
    *,
    pooling: str | Pooling = "mean",
    sink=None,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
    early_stop: bool = True,
    check_adapter: bool = True,
):
    """Capture the same ``layers`` of a base and a tuned model on the same batches.

    Rows stay paired (sample i of the base with sample i of the tuned model).  The
    default sink is an :class:`AccumulatorSink` (``sink.acc`` is a
    ``LayerwiseMoments``, memory constant in n).  Layer names must resolve to the same
    canonical names on both models (``ValueError`` naming both otherwise).

    With ``check_adapter`` an :class:`AdapterInactiveWarning` is issued when the tuned
    states are bit-identical to the base states at every layer — the usual sign of an
    adapter that is not active (zero-initialised LoRA B, a ``disable_adapter()``
    context, a forgotten ``set_adapter``) or of capturing the base model twice.
    """
    check_distinct(base, tuned)
    names = resolve_paired_layers(base, tuned, layers)
    sink = AccumulatorSink() if sink is None else sink
    sink, identical = capture_sides(
        {"base": base, "tuned": tuned},
        inputs,
        names,
        pooling=pooling,
        sink=sink,
        batch_size=batch_size,
        device=device,
        progress=progress,
        early_stop=early_stop,
    )
    if check_adapter and identical and all(identical.values()):
        warnings.warn(
            inactive_adapter_warning(f"the tuned model ({type(tuned).__name__})", len(identical)),
            stacklevel=2,
        )
    return sink
