"""The optimisation loop: deterministic data order, AdamW, warmup + decay, clipping,
multi-stage methods, periodic atomic state, resume and interruption.

Determinism (CPU): python/numpy/torch are seeded with ``seed`` before the method is
applied; batch ``k`` of epoch ``e`` is ``randperm(n, Generator(seed * 1_000_003 + e))[k*B:(k+1)*B]``
(``n // B`` batches per epoch; all ``n`` items when ``n <= B``), a pure function of the step,
so the data position of a resumed run is just its step.  The learning rate is a pure
function of the step too (:func:`lr_factor`), so the "scheduler state" is the step.

Multi-stage methods (PT-PEFT): ``cfg.stage_steps(steps)`` splits the steps; at a stage
boundary ``apply_method(model, cfg, stage=k)`` runs and AdamW is rebuilt over the new
trainable set (fresh moments); each stage has its own warmup + decay.  Parameters trained
in *any* stage are saved (a later stage may freeze earlier ones).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from repspace.training.state import latest_state, load_state, save_state, set_rng_state

__all__ = [
    "lr_factor",
    "batch_indices",
    "epoch_batch",
    "seed_everything",
    "adamw",
    "clip_and_set_lr",
    "Loop",
    "LoopResult",
]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base lr at 0-based ``step`` of ``total``: linear warmup over
    ``warmup`` steps ((step + 1) / warmup), then cosine (0.5 (1 + cos(pi t))) or linear
    (1 - t) decay to 0 with ``t = (step - warmup) / (total - warmup)``, or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    t = (step - warmup) / (total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * t)) if schedule == "cosine" else 1.0 - t


def epoch_batch(
    step: int, n: int, batch_size: int, permutation: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """Item indices ``(min(n, batch_size),)`` of the batch of global ``step``.

    An epoch is ``max(1, n // batch_size)`` batches (the ragged tail of each permutation is
    dropped); batch ``k`` of epoch ``e`` is ``permutation(e)[k*B:(k+1)*B]``, or all of
    ``permutation(e)`` when ``n <= batch_size``.  ``permutation(e)`` returns a ``(n,)`` int64
    permutation; where it comes from is the caller's choice (:func:`batch_indices` reseeds per
    epoch; ``repspace pretrain`` draws from one generator stream).
    """
    per_epoch = max(1, n // batch_size)
    epoch, k = divmod(step, per_epoch)
    perm = permutation(epoch)
    return perm if n <= batch_size else perm[k * batch_size : (k + 1) * batch_size]


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Item indices of the batch of global ``step`` (see the module docstring)."""

    def permutation(epoch: int) -> torch.Tensor:
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))

    return epoch_batch(step, n, batch_size, permutation)


def adamw(
    named_params,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    no_decay: Callable[[str, torch.Tensor], bool] | None = None,
) -> torch.optim.AdamW:
    """AdamW over the ``requires_grad`` parameters of ``named_params`` ((name, tensor) pairs, order
    kept).  ``no_decay(name, param) -> True`` moves a parameter into a second group with weight
    decay 0, listed after the decayed group; ``None`` makes a single group.  ``foreach=False``
    pins the single-tensor kernel (the CPU default) so a run's numbers do not depend on which
    kernel the device would pick."""
    named = [(n, p) for n, p in named_params if p.requires_grad]
    if no_decay is None:
        params = [p for _, p in named]
    else:
        params = [
            {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
        ]
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, foreach=False)


def clip_and_set_lr(
    opt: torch.optim.Optimizer, lr: float, max_grad_norm: float, params=None
) -> None:
    """Ready ``opt.step()``: clip the global gradient norm of ``params`` (default: ``opt``'s
    parameters in group order) to ``max_grad_norm`` (<= 0: no clipping) and set every group's
    learning rate to ``lr``.  The order of ``params`` matters to the last bit: the per-tensor
    norms are summed in that order."""
    if max_grad_norm > 0:
        if params is None:
            params = [p for g in opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    for g in opt.param_groups:
        g["lr"] = lr


@dataclass
class LoopResult:
    step: int
    finished: bool
    losses: list[float] = field(default_factory=list)
    resumed_from: int | None = None
    model: nn.Module | None = None
    trained: set = field(default_factory=set)  # ids of parameters trained in any stage
    seconds: float = 0.0
    # stage -> (trainable parameters once it is built, of which kept from the stage before)
    stages: dict = field(default_factory=dict)


class Loop:
    """One training run's loop.  ``apply_stage(model, k) -> model`` applies stage ``k``
    (and re-enables task heads); ``evaluate(model) -> scores`` for ``eval_every``."""

    def __init__(
        self,
        cfg,
        run_dir: Path,
        config_hash: str,
        task,
        enc,
        stage_steps: list[int],
        apply_stage: Callable,
        evaluate: Callable | None,
        device: torch.device,
        progress: bool,
        desc: str,
    ) -> None:
        self.cfg, self.run_dir, self.hash = cfg, Path(run_dir), config_hash
        self.task, self.enc, self.apply_stage, self.evaluate = task, enc, apply_stage, evaluate
        self.device, self.progress, self.desc = device, progress, desc
        self.bounds = np.cumsum(
            [0] + list(stage_steps)
        ).tolist()  # stage k spans bounds[k-1]:bounds[k]
        self.lr = cfg.resolved_lr()
        self.log_path = self.run_dir / "train_log.jsonl"

    # -- helpers ----------------------------------------------------------------------------
    def stage_of(self, step: int) -> int:
        for k in range(1, len(self.bounds)):
            if step < self.bounds[k]:
                return k
        return len(self.bounds) - 1

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return adamw(model.named_parameters(), self.lr, self.cfg.weight_decay)

    def weights(self, model: nn.Module, trained: set) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu() for n, p in model.named_parameters() if id(p) in trained}

    def _log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _truncate_log(self, step: int) -> None:
        """Keep log lines of steps <= ``step`` (a resumed run rewrites what came after)."""
        from repspace.training.state import atomic_write_text

        if not self.log_path.is_file():
            return
        keep = [
            line
            for line in self.log_path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        atomic_write_text(self.log_path, "".join(k + "\n" for k in keep))

    @staticmethod
    def _count(model: nn.Module, stages: dict, k: int, before: set) -> set:
        """Record stage ``k``'s trainable count (and how many of those stage ``k - 1`` trained);
        returns the ids of the parameters trainable now."""
        now = {id(p): p for p in model.parameters() if p.requires_grad}
        stages[k] = (
            sum(p.numel() for p in now.values()),
            sum(p.numel() for i, p in now.items() if i in before),
        )
        return set(now)

    def _save(self, model, opt, step: int, applied: int, trained: set) -> None:
        save_state(
            self.run_dir,
            step,
            applied,
            self.weights(model, trained),
            opt.state_dict(),
            {"config_hash": self.hash},
        )

    def _non_finite(self, value: float, step: int) -> str:
        """The culprit of a non-finite loss: on the very first batch the learning rate has not
        acted yet, so the base checkpoint or the method's initialisation (its options)
        produced it; after updates, the optimisation diverged."""
        cfg = self.cfg
        if step == 0:
            options = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.method_options.items()))
            return (
                f"the loss is {value} on the first batch, before any update (the learning "
                f"rate is not the cause): the base checkpoint {cfg.base} or the "
                f"initialisation of {cfg.method}{f' (options {options})' if options else ''} "
                "gives non-finite outputs; check the method options and the base's weights"
            )
        return (
            f"the loss became {value} at step {step} of {cfg.steps}: training diverged; lower "
            f"the learning rate (now {self.lr:g}, --lr) or raise --warmup-ratio"
        )

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self,
        model: nn.Module,
        callback: Callable | None = None,
        max_steps_this_call: int | None = None,
        observe: Callable[[nn.Module, int], None] | None = None,
    ) -> LoopResult:
        """Train from the saved state (if any) to the last step.  ``callback(step, loss)``
        after every step; ``observe(model, step)`` too, with the model as it is then (a
        stage boundary replaces it): the distortion tracker's hook."""
        cfg, total = self.cfg, self.bounds[-1]
        start, resumed_from, applied = 0, None, 1  # applied: stages built into the model
        trained = {id(p) for p in model.parameters() if p.requires_grad}
        stages: dict = {}
        current = self._count(model, stages, 1, set())
        state = None
        if latest_state(self.run_dir) is not None:
            weights, opt_state, meta = load_state(self.run_dir)
            if meta.get("config_hash") != self.hash:
                raise ValueError(
                    f"{self.run_dir}: saved state belongs to a different config; pass overwrite=True"
                )
            start = resumed_from = int(meta["step"])
            for applied in range(2, int(meta["stage"]) + 1):
                model = self.apply_stage(model, applied)
                current = self._count(model, stages, applied, current)
            from repspace.methods import load_trainable_state_dict

            load_trainable_state_dict(model, weights, f"{self.run_dir}/state")
            params = dict(model.named_parameters())
            trained = {id(params[n]) for n in weights} | {
                id(p) for p in model.parameters() if p.requires_grad
            }
            state = (opt_state, meta["rng"])
            self._truncate_log(start)
        elif self.log_path.exists():
            self.log_path.unlink()
        model.to(self.device)
        opt = self.optimizer(model)
        if state is not None:
            try:  # the saved state is data: a malformed one is one line, not a traceback
                opt.load_state_dict(state[0])
                set_rng_state(state[1])
            except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
                raise ValueError(
                    f"{self.run_dir}/state: saved optimizer / RNG state does not fit "
                    f"({type(exc).__name__}: {str(exc)[:120]}); pass --overwrite to "
                    "start over"
                ) from None
        stop = total if max_steps_this_call is None else min(total, start + max_steps_this_call)
        losses: list[float] = []
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start, desc=self.desc, unit="step", dynamic_ncols=True)
        step, updating, t0 = start, False, time.perf_counter()
        try:
            while step < stop:
                k = self.stage_of(step)
                while applied < k:  # stage boundary: build the next stage, new optimizer
                    applied += 1
                    model = self.apply_stage(model, applied).to(self.device)
                    trained |= {id(p) for p in model.parameters() if p.requires_grad}
                    current = self._count(model, stages, applied, current)
                    opt = self.optimizer(model)
                model.train()
                batch = {
                    n: v.to(self.device)
                    for n, v in self.enc.batch(
                        batch_indices(step, self.enc.n, cfg.batch_size, cfg.seed)
                    ).items()
                }
                self.task.check(
                    model, batch
                )  # repspace's inputs verified: a failure past here is the model's
                loss = self.task.loss(model, batch)
                if not torch.isfinite(loss):
                    raise ValueError(self._non_finite(loss.item(), step))
                loss.backward()
                lr = self.lr * lr_factor(
                    step - self.bounds[k - 1],
                    self.bounds[k] - self.bounds[k - 1],
                    int(round(cfg.warmup_ratio * (self.bounds[k] - self.bounds[k - 1]))),
                    cfg.schedule,
                )
                clip_and_set_lr(opt, lr, cfg.max_grad_norm)
                updating = True
                opt.step()
                opt.zero_grad(set_to_none=True)
                updating = False
                step += 1
                losses.append(float(loss.item()))
                self._log({"step": step, "loss": losses[-1], "lr": lr, "stage": k})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if (
                    self.evaluate is not None
                    and cfg.eval_every
                    and step % cfg.eval_every == 0
                    and step < total
                ):
                    self._log({"step": step, "eval": self.evaluate(model)})
                if step % cfg.save_every == 0 or step == stop:
                    self._save(model, opt, step, applied, trained)
                if observe is not None:
                    observe(model, step)
                if callback is not None:
                    callback(step, losses[-1])
        except KeyboardInterrupt:
            if not updating and step > start:
                self._save(
                    model, opt, step, applied, trained
                )  # Ctrl-C keeps the last complete step
            raise
        finally:
            if bar is not None:
                bar.close()
        if step >= total:
            while applied < len(self.bounds) - 1:  # trailing zero-step stages still shape the model
                applied += 1
                model = self.apply_stage(model, applied).to(self.device)
                trained |= {id(p) for p in model.parameters() if p.requires_grad}
                current = self._count(model, stages, applied, current)
        return LoopResult(
            step,
            step >= total,
            losses,
            resumed_from,
            model,
            trained,
            time.perf_counter() - t0,
            stages,
        )
