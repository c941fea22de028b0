"""``LayerCapture``: forward hooks on selected modules, removed on exit (even on error).

>>> with LayerCapture(model, "blocks", early_stop=True) as cap:
...     states = cap.forward({"input_ids": ids, "attention_mask": mask})
>>> states["encoder.layer.0"].shape      # (batch, tokens, hidden), float32

States are the module outputs *as the model sees them*: for a LoRA-wrapped linear
that includes the adapter's update, for a block the block's hidden-state output.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from repspace.capture.model_view import model_view
from repspace.layer_table import split_input_suffix
from repspace.capture.selection import LayerSpec, resolve_layers

__all__ = ["LayerCapture", "hidden_tensor"]


class _StopForward(Exception):
    """Raised by the last requested hook to skip the rest of the forward pass."""


def hidden_tensor(output: object, layer: str) -> torch.Tensor:
    """The hidden-state tensor in a module's output, detached, fp16/bf16 cast to fp32.

    Tensors pass through; tuples/lists (HF blocks return ``(hidden, attn, ...)``) give
    their first tensor; ``ModelOutput``/dicts give ``last_hidden_state`` or their first
    tensor value.
    """
    t = output
    if isinstance(t, Mapping):
        t = t.get("last_hidden_state", next((v for v in t.values() if torch.is_tensor(v)), None))
    elif isinstance(t, (tuple, list)):
        t = next((v for v in t if torch.is_tensor(v)), None)
    if not torch.is_tensor(t):
        raise ValueError(
            f"layer {layer!r} returned {type(output).__name__} without a tensor; "
            "select a module whose output is a hidden-state tensor"
        )
    t = t.detach()
    # Metrics accumulate in float64 anyway; fp32 keeps half-precision rounding out of
    # pooling sums without doubling the transfer size.
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t


class LayerCapture:
    """Context manager capturing the outputs of selected layers of any ``nn.Module``.

    Parameters
    ----------
    model : nn.Module
        HF model, PEFT ``PeftModel`` or plain module.  Names are canonical (see
        :mod:`repspace.layer_table`), so the same ``layers`` work on base and tuned.
    layers : names, globs, regexes or presets (see :mod:`repspace.capture.selection`).
    early_stop : bool
        Abort the forward pass (via a private exception caught in :meth:`forward`) as
        soon as every requested layer has produced its output.  Only use it when the
        hidden states are all you want: the model's own output is not computed.

    Attributes
    ----------
    names : list[str]      the resolved canonical layer names, in model order
    states : dict[str, Tensor]   outputs of the last forward, ``(batch, ..., hidden)``
    """

    def __init__(self, model: nn.Module, layers: LayerSpec, *, early_stop: bool = False):
        self.model = model
        self.names = resolve_layers(model, layers)
        modules = model_view(model).modules
        self._targets = [
            (n, modules[split_input_suffix(n)[0]], split_input_suffix(n)[1]) for n in self.names
        ]
        self.early_stop = early_stop
        self.states: dict[str, torch.Tensor] = {}
        self._handles: list = []
        self._was_training: dict[nn.Module, bool] | None = None

    # -- hooks ---------------------------------------------------------------------------
    def _store(self, name: str, value: object) -> None:
        if name in self.states:
            raise ValueError(
                f"layer {name!r} ran more than once in one forward pass (a shared "
                "or re-used module); select a module that runs once per input"
            )
        self.states[name] = hidden_tensor(value, name)
        if self.early_stop and len(self.states) == len(self._targets):
            raise _StopForward

    def _make_hook(self, name: str, on_input: bool):
        if on_input:

            def pre_hook(module, args, kwargs):
                value = (
                    args[0]
                    if args and torch.is_tensor(args[0])
                    else kwargs.get(
                        "hidden_states",
                        next((v for v in kwargs.values() if torch.is_tensor(v)), None),
                    )
                )
                self._store(name, value)

            return pre_hook

        def hook(module, args, output):
            self._store(name, output)

        return hook

    def __enter__(self) -> "LayerCapture":
        if self._handles:
            raise RuntimeError("this LayerCapture is already active; do not nest it")
        try:
            for name, module, on_input in self._targets:
                fn = self._make_hook(name, on_input)
                self._handles.append(
                    module.register_forward_pre_hook(fn, with_kwargs=True)
                    if on_input
                    else module.register_forward_hook(fn)
                )
        except BaseException:
            self.remove()
            raise
        # Remember every module's flag: PEFT adds new (training-mode) modules to eval
        # models, so a blanket train() on exit would flip the base model's dropout on.
        self._was_training = {m: m.training for m in self.model.modules()}
        self.model.eval()  # dropout off: captures must be deterministic
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.remove()
        return False

    def remove(self) -> None:
        """Remove every hook this object registered and restore the training flag."""
        while self._handles:
            self._handles.pop().remove()
        for module, flag in (self._was_training or {}).items():
            module.training = flag
        self._was_training = None

    @property
    def active(self) -> bool:
        return bool(self._handles)

    # -- running -------------------------------------------------------------------------
    def forward(self, inputs: Mapping[str, object]) -> dict[str, torch.Tensor]:
        """Run ``model(**inputs)`` under ``inference_mode``; return ``{layer: states}``.

        Raises ``ValueError`` if a requested layer did not run (e.g. a decoder layer
        when no decoder inputs were given).
        """
        if not self._handles:
            raise RuntimeError("LayerCapture.forward() needs the hooks: use it inside `with`")
        self.states = {}
        with torch.inference_mode():
            try:
                self.model(**inputs)
            except _StopForward:
                pass
        missing = [n for n in self.names if n not in self.states]
        if missing:
            raise ValueError(
                f"layers {missing} did not run for inputs {sorted(inputs)}; they "
                "belong to a part of the model these inputs do not reach — "
                "pass the inputs that part needs or deselect them"
            )
        return {n: self.states[n] for n in self.names}
