"""`TrainConfig`: everything that defines a training run, validated at construction.

The config is a plain dataclass; :meth:`TrainConfig.config_hash` is a sha256 of the fields
that change the *result* (not ``output_dir``, ``overwrite``, ``save_every``, ``device``),
so a run folder can tell "same run, resume it" from "different run, refuse".

Learning-rate defaults (``lr=None``), by method family (AdamW, batch 32, a few hundred
steps on the tiny shapes-world model; literature values for the same optimiser):

=========  ======  ==========================================================
family     lr      why
=========  ======  ==========================================================
full       1e-4    every weight moves; larger rates destroy the pre-training
lora       1e-3    low-rank deltas start at zero (B = 0)
ia3        3e-3    multiplicative vectors start at one, need larger steps
adapter    1e-3    near-identity bottlenecks
prefix     5e-3    a handful of virtual key/value vectors
prompt     5e-3    a handful of virtual input tokens
adalink    1e-3    residual low-rank bottleneck on the embeddings
ptpeft     1e-3    prefix stage then LoRA/adapter stage
=========  ======  ==========================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from repspace._constraints import (
    MAX_SEED,
    SEED,
    Check,
    Interval,
    Options,
    SettingError,
    Types,
    Validated,
)
from repspace.data.domains import DOMAINS

__all__ = ["TrainConfig", "DEFAULT_LR", "TASKS", "SCHEDULES", "MAX_SEED", "SEED", "default_lr"]

TASKS = ("captioning", "vqa", "classify")
SCHEDULES = ("cosine", "linear", "constant")


class _DefaultLR(Mapping):
    """``{method: default learning rate}``, read from each method's own facts
    (:class:`repspace.methods.MethodFacts`); a view, so a newly registered method appears."""

    def _facts(self):
        from repspace.methods import method_facts

        return method_facts()

    def __getitem__(self, method: str) -> float:
        return self._facts()[method].default_lr

    def __iter__(self):
        return iter(self._facts())

    def __len__(self) -> int:
        return len(self._facts())

    def __repr__(self) -> str:
        return repr(dict(self))


DEFAULT_LR = _DefaultLR()
# Fields that do not change what is trained (excluded from the hash).
_NOT_HASHED = ("output_dir", "overwrite", "save_every", "device", "eval_batch_size")


def default_lr(method: str) -> float:
    """Default learning rate of ``method``, as the method declares it (``MethodFacts``)."""
    from repspace.methods import get_method

    return get_method(method).facts.default_lr


@dataclass
class TrainConfig(Validated):
    """One fine-tuning run (see :mod:`repspace.training`).

    Attributes:
        base: checkpoint spec of the pre-trained model (folder, hub id, ``"embedded"``).
        method: registry name (:func:`repspace.methods.available_methods`).
        method_options: keyword overrides of the method's config (``{"r": 8}``).
        task: ``"captioning"``, ``"vqa"`` or ``"classify"`` (sentence classification: text
            encoders, text-only causal LMs and text-to-text models, :mod:`repspace.data.sentences`).
        domain: shapes-world domain (``"source"``/``"shifted"``); ignored when ``data`` is set.
        data: ``None`` (shapes world) or a data-spec JSON naming COCO-style caption files or
            VQAv2-style question/annotation files and image folders (see :mod:`repspace.training.data`).
        data_fraction: nested share of the training set kept (0, 1].
        data_seed: seed of the shapes world (the *data*; ``seed`` varies only the training).
        n_train, n_eval: shapes-world images in the train / held-out (test) split.
        image_size: side the images are rendered/loaded at (the processor resizes after).
        steps, batch_size, lr (None: :func:`default_lr`), weight_decay, warmup_ratio,
        schedule (cosine | linear | constant decay after warmup), max_grad_norm (<= 0: off).
        seed: seeds python, numpy, torch, the data order and method initialisation.
        eval_every: evaluate on the val split every this many steps (None: only at the end).
        save_every: write a resumable state every this many steps.
        max_new_tokens: generation length at evaluation (None: 32 captioning, 8 VQA).
        output_dir: run folder (None: ``runs/<method>-<task>-s<seed>``).
        overwrite: replace a run folder that holds a *different* run.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``.
    """

    base: str = "embedded"
    method: str = "lora"
    method_options: dict = field(default_factory=dict)
    task: str = "vqa"
    domain: str = "source"
    data: str | None = None
    data_fraction: float = 1.0
    data_seed: int = 0
    n_train: int = 2000
    n_eval: int = 200
    image_size: int = 32
    steps: int = 300
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    schedule: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_every: int | None = None
    save_every: int = 100
    max_new_tokens: int | None = None
    eval_batch_size: int | None = None
    output_dir: str | None = None
    overwrite: bool = False
    device: str = "cpu"

    _command: ClassVar = "train"
    _constraints: ClassVar = {
        "base": [
            Check(
                lambda v: isinstance(v, str) and bool(v),
                "a checkpoint spec (a folder, hub id or 'embedded')",
            )
        ],
        "method": [Check(lambda v: isinstance(v, str) and bool(v), "a method name")],
        "method_options": [Types(dict, name="a mapping of option names to JSON values")],
        "task": [Options(*TASKS)],
        "domain": [Options(*DOMAINS)],
        "data": [
            Check(lambda v: isinstance(v, str) and bool(v), "a path to a data-spec JSON"),
            None,
        ],
        "data_fraction": [Interval(float, 0, 1, closed="right")],
        "data_seed": [SEED],
        "n_train": [Interval(int, 1, None)],
        "n_eval": [Interval(int, 1, None)],
        # the processors resize anyway; below 18 px the shapes world's shapes are unreadable
        "image_size": [Interval(int, 18, None)],
        "steps": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, 1, closed="neither"), None],  # None: the method's default
        "weight_decay": [Interval(float, 0, 10)],
        "warmup_ratio": [Interval(float, 0, 1)],
        "schedule": [Options(*SCHEDULES)],
        "max_grad_norm": [Interval(float)],  # <= 0 turns clipping off
        "seed": [SEED],
        "eval_every": [Interval(int, 1, None), None],
        "save_every": [Interval(int, 1, None)],
        "max_new_tokens": [Interval(int, 1, None), None],
        "eval_batch_size": [Interval(int, 1, None), None],
        "output_dir": [Types(str, os.PathLike, name="a folder path"), None],
        "overwrite": [Types(bool)],
        "device": [Types(str, name="a device name (cpu, cuda, cuda:1, auto)")],
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            json.dumps(self.method_options)
        except (TypeError, ValueError):
            raise SettingError(
                "method_options",
                self.method_options,
                "JSON-serialisable (numbers, strings, lists)",
                type(self).__name__,
            ) from None
        # floats from here on: the config hash of lr=1e-3 and of a 0.001 read from JSON agree
        for name in ("data_fraction", "weight_decay", "warmup_ratio", "max_grad_norm"):
            setattr(self, name, float(getattr(self, name)))
        if self.lr is not None:
            self.lr = float(self.lr)
        if self.output_dir is None:
            self.output_dir = f"runs/{self.method}-{self.task}-s{self.seed}"
        self.output_dir = str(self.output_dir)

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (inverse: :meth:`from_dict`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Config from :meth:`to_dict` output; unknown keys fail in one line naming them."""
        if not isinstance(d, dict):
            raise ValueError(f"TrainConfig.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"TrainConfig has no field(s) {', '.join(unknown)}; fields are {', '.join(sorted(names))}"
            )
        return cls(**d)

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else default_lr(self.method)

    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of the result-relevant fields; ``lr=None`` is
        hashed as the resolved default, so changing a default changes the hash."""
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        d["lr"] = self.resolved_lr()
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()
