"""The pretrain recipe's optimisation loop and data: rendering the shapes world, the data
order (one generator stream), the schedule, and the decoder losses (see
:mod:`repspace.training.pretrain` for the recipe as a whole)."""

from __future__ import annotations

import math
import time

from repspace.training.pretrain.config import PretrainConfig

__all__ = [
    "lr_lambda",
    "StreamPermutations",
    "render",
    "no_decay",
    "train_loop",
    "decoder_batch",
    "text_loss",
]


def lr_lambda(steps: int, warmup_ratio: float):
    """Multiplier of the peak LR at step ``s``: ``(s+1)/w`` for ``s < w``, then
    ``0.5 (1 + cos(pi (s - w) / (steps - w)))`` (cosine from 1 to 0; ``s`` past ``steps`` stays
    at the end value), via the trainer's :func:`~repspace.training.trainer.lr_factor`."""
    from repspace.training.trainer import lr_factor

    # At least 1 warm-up step (the trainer allows 0): the shipped model's recipe always had one.
    warm = max(1, int(round(warmup_ratio * steps)))
    return lambda s: lr_factor(min(s, steps), steps, warm, "cosine")


class StreamPermutations:
    """Epoch permutations of ``range(n)`` drawn one after another from a single
    ``torch.Generator().manual_seed(seed)`` (the recipe's data order; the trainer reseeds per
    epoch instead).  ``skip`` draws are discarded first: the loop that trained the shipped model
    drew a permutation up front and replaced it before the first batch when ``batch_size > n``.
    Epochs must be asked for in non-decreasing order (a stream cannot rewind)."""

    def __init__(self, n: int, seed: int, skip: int) -> None:
        import torch

        self.n, self.gen, self.epoch, self.perm = (
            n,
            torch.Generator().manual_seed(seed),
            -1 - skip,
            None,
        )

    def __call__(self, epoch: int):
        import torch

        if epoch < self.epoch:
            raise ValueError(
                f"pretrain: data order asked for epoch {epoch} after epoch {self.epoch}; "
                "the permutation stream only moves forward"
            )
        while self.epoch < epoch:
            self.perm, self.epoch = torch.randperm(self.n, generator=self.gen), self.epoch + 1
        return self.perm


def render(world, split: str, n: int):
    """Images ``(n, H, W, 3)`` uint8, the 3 reference captions and the scenes of samples ``0..n-1``."""
    import numpy as np

    from repspace.data.text import captions

    idx = np.arange(n)
    scenes = [world.scene(split, int(i)) for i in idx]
    images = np.stack([world.image(split, int(i), s) for i, s in zip(idx, scenes)])
    return images, [captions(s) for s in scenes], scenes


def no_decay(name: str, p) -> bool:
    """Biases, norms and embeddings get no weight decay (the recipe's second AdamW group)."""
    return p.ndim < 2 or "embedding" in name


def train_loop(model, pixels_u8, targets, cfg: PretrainConfig, progress: bool, text=None):
    """The optimisation loop, built from the trainer's pieces (seeding is the caller's);
    returns ``(loss_curve, seconds)``.

    ``pixels_u8``: ``(n, H, W, 3)`` uint8; ``targets``: a
    :class:`~repspace.training.pretrain_corpus.TextTargets` with ``v`` texts per image.  With
    ``v > 1`` each image of a batch gets one of its texts uniformly at random from a second
    generator, ``torch.Generator().manual_seed(seed + 1)`` (with ``v == 1`` nothing is drawn,
    so v1's data order is untouched).  ``text``: the text-only stream (``v == 1``) or
    ``None``; each step adds the decoder's loss on ``text_batch_size`` of its texts, drawn
    from ``torch.Generator().manual_seed(seed + 2)``, run without an image.

    Not :class:`~repspace.training.trainer.Loop` itself: the shipped weights fix this recipe's
    data order (one generator stream), AdamW groups and betas, warm-up rounding and clipping
    order (model parameter order), all of which differ from the trainer's.
    """
    import torch
    from tqdm.auto import tqdm

    from repspace.models import pixel_values
    from repspace.training.trainer import adamw, clip_and_set_lr, epoch_batch

    opt = adamw(
        model.named_parameters(), cfg.lr, cfg.weight_decay, betas=(0.9, 0.98), no_decay=no_decay
    )
    lr_at = lr_lambda(cfg.steps, cfg.warmup_ratio)
    n = len(pixels_u8)
    order = StreamPermutations(n, cfg.seed, skip=int(cfg.batch_size > n))
    pick = torch.Generator().manual_seed(cfg.seed + 1)
    pick_text = torch.Generator().manual_seed(cfg.seed + 2)
    curve, window = [], []
    model.train()
    start = time.perf_counter()
    bar = tqdm(
        total=cfg.steps, desc="pretrain", unit="step", disable=not progress, dynamic_ncols=True
    )
    for step in range(cfg.steps):
        idx = epoch_batch(step, n, cfg.batch_size, order)
        var = (
            torch.randint(targets.variants, (len(idx),), generator=pick)
            if targets.variants > 1
            else 0
        )
        ids, mask, labels = decoder_batch(targets, idx, var)
        loss = model(
            pixel_values=pixel_values(pixels_u8[idx]),
            input_ids=ids,
            attention_mask=mask,
            labels=labels,
        ).loss
        if text is not None:
            loss = loss + text_loss(
                model,
                text,
                torch.randint(len(text.input_ids), (cfg.text_batch_size,), generator=pick_text),
            )
        if not math.isfinite(loss.item()):
            raise ValueError(f"pretrain: loss became {loss.item()} at step {step}; lower --lr")
        loss.backward()
        lr = cfg.lr * lr_at(step)
        clip_and_set_lr(opt, lr, cfg.max_grad_norm, list(model.parameters()))
        opt.step()
        opt.zero_grad(set_to_none=True)
        window.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            curve.append([step + 1, round(sum(window) / len(window), 5)])
            window = []
            bar.set_postfix(loss=f"{curve[-1][1]:.4f}", lr=f"{lr:.1e}")
        bar.update(1)
    bar.close()
    model.eval()
    return curve, time.perf_counter() - start


def decoder_batch(targets, rows, variant):
    """``(input_ids, attention_mask, labels)`` of text ``variant`` (an int, or one per row) of
    ``rows`` of a :class:`~repspace.training.pretrain_corpus.TextTargets`, trimmed to the
    batch's longest text; labels are -100 off the label mask."""
    mask = targets.attention_mask[rows, variant]
    width = int(mask.sum(1).max())  # trim padding columns shared by the whole batch
    ids, mask = targets.input_ids[rows, variant, :width], mask[:, :width]
    return ids, mask, ids.masked_fill(targets.label_mask[rows, variant, :width] == 0, -100)


def text_loss(model, text, rows):
    """Decoder loss on text-only rows (no ``encoder_hidden_states``: BLIP's text layers then
    skip cross-attention), with the same label smoothing and mean as the image loss."""
    ids, mask, labels = decoder_batch(text, rows, 0)
    return model.text_decoder(
        input_ids=ids, attention_mask=mask, labels=labels, reduction="mean"
    ).loss
