"""``repspace pretrain``: the reproducible recipe behind the embedded model.

A randomly initialised tiny ``BlipForConditionalGeneration`` (:func:`repspace.models.tiny_blip_config`)
is pre-trained on the shapes world's *source* domain:

* data: ``ShapesWorld(seed=data_seed, domain="source", image_size=32, n_train=n_train)``
  train split, rendered once into a uint8 tensor;
* targets (:mod:`repspace.training.pretrain_corpus`): recipe v2
  (``corpus="captions+itm+text"``, the shipped model) draws one of five texts per image and
  step: the three reference captions (language modelling, every token) or a true /
  non-matching caption followed by ``? yes`` / ``? no`` (image-text matching, loss on the
  answer only), a small stand-in for BLIP's own LM + ITM pre-training; each step also adds
  the loss on a batch of text-only ``question answer`` texts (no image: the language side
  a real VLM brings).  Recipe v1 (``corpus="canonical"``) trains on the canonical caption
  only, as ``[DEC] words [SEP]`` (:func:`repspace.data.decoder_inputs`);
* order: epoch permutations from ``torch.Generator().manual_seed(seed)``, text choice from
  ``seed + 1``, text-only rows from ``seed + 2``; init from ``torch.manual_seed(seed)``; no
  dropout, so a CPU run is a function of the seed;
* optimiser: AdamW (betas 0.9/0.98), linear warm-up then cosine decay to 0, gradient
  clipping at 1.0; loss = token cross-entropy of the decoder (BLIP's own);
* evaluation: greedy captions of the held-out *test* split (compositions never seen in
  training), CIDEr-D and BLEU-4 against the three references per image
  (:mod:`repspace.evaluation`), the trivial baseline "always emit the most common
  train caption", and held-out image-text matching accuracy
  (:func:`~repspace.training.pretrain_corpus.matching_accuracy`).

The folder (weights, config, processor, ``pretrain_manifest.json``) is written to a temporary
sibling and moved into place with ``os.replace``, so ``--output`` is either the old folder or
the complete new one, never a partial one.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

__all__ = ["PretrainConfig", "QUICK", "pretrain", "add_pretrain_parser", "run_pretrain"]

#: Recipe id per corpus (recorded in the manifest); the shipped model is v2.
RECIPES = {"canonical": "repspace.pretrain.tiny_blip_captioning/v1",
           "captions+itm": "repspace.pretrain.tiny_blip_captions_itm/v2-no-text",
           "captions+itm+text": "repspace.pretrain.tiny_blip_captions_itm_text/v2"}
RECIPE = RECIPES["captions+itm+text"]


@dataclass(frozen=True)
class PretrainConfig:
    """Every knob of the recipe (recorded verbatim in the manifest).

    Attributes:
        seed: initialisation and data-order seed.
        data_seed: shapes-world seed (the data itself; 0 is the canonical world every
            repspace evaluation uses).
        steps, batch_size: optimisation steps and images per step.
        lr, weight_decay, warmup_ratio, max_grad_norm: AdamW peak learning rate, decoupled weight
            decay, share of steps of linear warm-up (then cosine to 0), max gradient norm.
        n_train, n_eval: rendered train images (distinct scenes) and held-out test images.
        image_size: image side in pixels.
        max_new_tokens: generation budget for evaluation captions (a caption is <= 16 tokens).
        architecture: keyword arguments of :func:`repspace.models.tiny_blip_config`.
        corpus: the text targets (:mod:`repspace.training.pretrain_corpus`):
            ``"captions+itm+text"`` (v2: the three reference captions, generated image-text
            matching, and a text-only question-answer stream), ``"captions+itm"`` (v2 without
            the text stream) or ``"canonical"`` (v1: the canonical caption only).
        text_batch_size: texts per step of the text-only stream (``+text`` corpora only).
    """

    seed: int = 0
    data_seed: int = 0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    n_train: int = 30000
    n_eval: int = 200
    image_size: int = 32
    max_new_tokens: int = 24
    architecture: dict = field(default_factory=lambda: dict(
        patch_size=4, vision_hidden=96, vision_layers=3, text_hidden=96, text_layers=3,
        num_heads=4, mlp_ratio=4))
    corpus: str = "captions+itm+text"
    text_batch_size: int = 32

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "n_train", "n_eval", "max_new_tokens", "text_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"pretrain: {name} must be a positive integer, got {v!r}")
        for name in ("seed", "data_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"pretrain: {name} must be a non-negative integer, got {v!r}")
        if self.corpus not in RECIPES:
            raise ValueError(f"pretrain: unknown corpus {self.corpus!r}; choose one of {', '.join(RECIPES)}")
        if self.n_eval < 2:
            raise ValueError("pretrain: n_eval must be >= 2 (CIDEr-D needs at least two images)")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.warmup_ratio < 1 or not self.max_grad_norm > 0:
            raise ValueError("pretrain: need lr > 0, weight_decay >= 0, 0 <= warmup_ratio < 1, max_grad_norm > 0; "
                             f"got {self.lr}, {self.weight_decay}, {self.warmup_ratio}, {self.max_grad_norm}")


#: Tiny settings for tests and smoke runs (same architecture, seconds on a CPU).
QUICK = PretrainConfig(steps=4, batch_size=8, n_train=64, n_eval=8, max_new_tokens=8)


def _lr_lambda(steps: int, warmup_ratio: float):
    """Multiplier of the peak LR at step ``s``: ``(s+1)/w`` for ``s < w``, then
    ``0.5 (1 + cos(pi (s - w) / (steps - w)))`` (cosine from 1 to 0; ``s`` past ``steps`` stays
    at the end value), via the trainer's :func:`~repspace.training.trainer.lr_factor`."""
    from repspace.training.trainer import lr_factor

    # At least 1 warm-up step (the trainer allows 0): the shipped model's recipe always had one.
    warm = max(1, int(round(warmup_ratio * steps)))
    return lambda s: lr_factor(min(s, steps), steps, warm, "cosine")


class _StreamPermutations:
    """Epoch permutations of ``range(n)`` drawn one after another from a single
    ``torch.Generator().manual_seed(seed)`` (the recipe's data order; the trainer reseeds per
    epoch instead).  ``skip`` draws are discarded first: the loop that trained the shipped model
    drew a permutation up front and replaced it before the first batch when ``batch_size > n``.
    Epochs must be asked for in non-decreasing order (a stream cannot rewind)."""

    def __init__(self, n: int, seed: int, skip: int) -> None:
        import torch

        self.n, self.gen, self.epoch, self.perm = n, torch.Generator().manual_seed(seed), -1 - skip, None

    def __call__(self, epoch: int):
        import torch

        if epoch < self.epoch:
            raise ValueError(f"pretrain: data order asked for epoch {epoch} after epoch {self.epoch}; "
                             "the permutation stream only moves forward")
        while self.epoch < epoch:
            self.perm, self.epoch = torch.randperm(self.n, generator=self.gen), self.epoch + 1
        return self.perm


def _render(world, split: str, n: int):
    """Images ``(n, H, W, 3)`` uint8, the 3 reference captions and the scenes of samples ``0..n-1``."""
    import numpy as np

    from repspace.data.text import captions

    idx = np.arange(n)
    scenes = [world.scene(split, int(i)) for i in idx]
    images = np.stack([world.image(split, int(i), s) for i, s in zip(idx, scenes)])
    return images, [captions(s) for s in scenes], scenes


_TARGET_NOTES = {
    "canonical": "canonical caption (captions[0])",
    "captions+itm+text": "as captions+itm, plus a text-only stream of 'question answer' texts about train "
                         "scenes of both domains (no image; text_batch_size per step)",
    "captions+itm": "one of 5 texts per image and step: captions[0], captions[1], captions[2] (count as a "
                    "digit for half the images), '<true caption> ? yes', '<non-matching caption> ? no' "
                    "(loss on answer + [SEP] only); repspace.training.pretrain_corpus",
}


def _check_output(out: Path) -> None:
    """Before any work: where every command's output may go (not the current folder or a
    parent, not a link, not under a file: :func:`repspace.outputs.check_location`), and an
    existing folder only if `repspace pretrain` wrote it."""
    from repspace.outputs import check_location

    if out.exists() and not out.is_dir():
        raise ValueError(f"pretrain: --output {out} is a file; pass a folder path")
    check_location(out, option="pretrain: --output")
    if out.is_dir() and any(out.iterdir()) and not (out / "pretrain_manifest.json").is_file():
        raise ValueError(f"pretrain: --output {out} is a non-empty folder that was not written by "
                         "`repspace pretrain` (no pretrain_manifest.json); pick a new or empty folder")


def _normal_permissions(folder: Path) -> None:
    """mkdtemp / safetensors create owner-only entries; give the folder the umask's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for f in folder.iterdir():
        os.chmod(f, 0o666 & ~umask)


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out`` with one rename; an existing folder is only
    replaced if it is still a pretrain output (re-checked under the rename, see
    :func:`repspace.outputs.publish`)."""
    from repspace.outputs import publish

    publish(tmp, out, overwrite=True, is_ours=lambda p: (p / "pretrain_manifest.json").is_file(),
            kind="pretrained model")


def _no_decay(name: str, p) -> bool:
    """Biases, norms and embeddings get no weight decay (the recipe's second AdamW group)."""
    return p.ndim < 2 or "embedding" in name


def _train(model, pixels_u8, targets, cfg: PretrainConfig, progress: bool, text=None):
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

    opt = adamw(model.named_parameters(), cfg.lr, cfg.weight_decay, betas=(0.9, 0.98), no_decay=_no_decay)
    lr_at = _lr_lambda(cfg.steps, cfg.warmup_ratio)
    n = len(pixels_u8)
    order = _StreamPermutations(n, cfg.seed, skip=int(cfg.batch_size > n))
    pick = torch.Generator().manual_seed(cfg.seed + 1)
    pick_text = torch.Generator().manual_seed(cfg.seed + 2)
    curve, window = [], []
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="pretrain", unit="step", disable=not progress, dynamic_ncols=True)
    for step in range(cfg.steps):
        idx = epoch_batch(step, n, cfg.batch_size, order)
        var = torch.randint(targets.variants, (len(idx),), generator=pick) if targets.variants > 1 else 0
        ids, mask, labels = _decoder_batch(targets, idx, var)
        loss = model(pixel_values=pixel_values(pixels_u8[idx]), input_ids=ids, attention_mask=mask,
                     labels=labels).loss
        if text is not None:
            loss = loss + _text_loss(model, text, torch.randint(len(text.input_ids), (cfg.text_batch_size,),
                                                                generator=pick_text))
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


def _decoder_batch(targets, rows, variant):
    """``(input_ids, attention_mask, labels)`` of text ``variant`` (an int, or one per row) of
    ``rows`` of a :class:`~repspace.training.pretrain_corpus.TextTargets`, trimmed to the
    batch's longest text; labels are -100 off the label mask."""
    mask = targets.attention_mask[rows, variant]
    width = int(mask.sum(1).max())  # trim padding columns shared by the whole batch
    ids, mask = targets.input_ids[rows, variant, :width], mask[:, :width]
    return ids, mask, ids.masked_fill(targets.label_mask[rows, variant, :width] == 0, -100)


def _text_loss(model, text, rows):
    """Decoder loss on text-only rows (no ``encoder_hidden_states``: BLIP's text layers then
    skip cross-attention), with the same label smoothing and mean as the image loss."""
    ids, mask, labels = _decoder_batch(text, rows, 0)
    return model.text_decoder(input_ids=ids, attention_mask=mask, labels=labels, reduction="mean").loss


def _versions() -> dict:
    import numpy
    import torch
    import transformers

    from repspace import __version__
    return {"repspace": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def pretrain(config: PretrainConfig | None = None, output_dir: str | os.PathLike | None = None,
             progress: bool = True, threads: int | None = 1) -> dict:
    """Run the recipe and write the model folder to ``output_dir`` (default: the package's
    embedded folder, :func:`repspace.models.embedded_path`).  Returns the manifest dict.

    ``threads``: torch intra-op threads while pretraining (restored afterwards; ``None`` keeps
    the current setting).  1 is the default because this model's matrices are too small to
    gain from more: on a shared 2-core machine 1 thread ran a batch-64 step in 0.24 s and 2
    threads in 0.47-0.94 s (docs/embedded_model.md).
    """
    import torch

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"pretrain: threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _pretrain(config, output_dir, progress)
    finally:
        torch.set_num_threads(before)


def _pretrain(config: PretrainConfig | None, output_dir, progress: bool) -> dict:
    import torch
    import transformers

    from repspace.data import ShapesWorld
    from repspace.evaluation import cider_d
    from repspace.models import (build_processor, embedded_path, evaluate_captions, generate_captions,
                                 pixel_values, tiny_blip_config)
    from repspace.training.pretrain_corpus import build_targets, build_text_stream, matching_accuracy
    from repspace.training.trainer import seed_everything

    cfg = PretrainConfig() if config is None else config
    if not isinstance(cfg, PretrainConfig):
        raise ValueError(f"pretrain: config must be a PretrainConfig, got {type(cfg).__name__}")
    out = Path(os.path.abspath(Path(embedded_path() if output_dir is None else output_dir).expanduser()))
    _check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    world = ShapesWorld(seed=cfg.data_seed, domain="source", image_size=cfg.image_size,
                        n_train=cfg.n_train, n_test=cfg.n_eval)
    train_images, train_refs, train_scenes = _render(world, "train", cfg.n_train)
    test_images, test_refs, test_scenes = _render(world, "test", cfg.n_eval)
    t_data = time.perf_counter() - t0

    processor = build_processor(cfg.image_size)
    tok = processor.tokenizer
    targets = build_targets(tok, train_scenes, cfg.corpus, cfg.seed)
    text = (build_text_stream(tok, cfg.data_seed, max(1, cfg.n_train // 2), cfg.seed)
            if cfg.corpus.endswith("+text") else None)
    seed_everything(cfg.seed)  # the init draws from torch only; python/numpy as `repspace train` does
    model = transformers.BlipForConditionalGeneration(
        tiny_blip_config(image_size=cfg.image_size, tokenizer=tok, **cfg.architecture))
    curve, t_train = _train(model, torch.from_numpy(train_images), targets, cfg, progress, text=text)

    t1 = time.perf_counter()
    preds = generate_captions(model, tok, pixel_values(test_images), max_new_tokens=cfg.max_new_tokens)
    scores = evaluate_captions(preds, test_refs)
    n_seen = min(cfg.n_train, cfg.n_eval)
    train_preds = generate_captions(model, tok, pixel_values(train_images[:n_seen]),
                                    max_new_tokens=cfg.max_new_tokens)
    train_scores = evaluate_captions(train_preds, train_refs[:n_seen])
    common = Counter(r[0] for r in train_refs).most_common(1)[0][0]
    baseline = cider_d([common] * len(test_refs), test_refs)
    matching = matching_accuracy(model, tok, pixel_values(test_images), test_scenes, seed=cfg.seed)
    t_eval = time.perf_counter() - t1

    manifest = {
        "schema": "repspace.pretrain", "version": 1, "recipe": RECIPES[cfg.corpus],
        "command": "repspace pretrain" + ("" if output_dir is None else f" --output {out}"),
        "config": asdict(cfg), "seed": cfg.seed, "steps": cfg.steps,
        "data": {"world": asdict(world.config), "split_train": "train", "split_eval": "test",
                 "target": _TARGET_NOTES[cfg.corpus], "corpus": cfg.corpus,
                 "sample_targets": targets.texts[:2],
                 "text_stream": None if text is None else {"texts": len(text.texts), "samples": text.texts[:4]},
                 "n_train": cfg.n_train, "n_eval": cfg.n_eval},
        "params": int(sum(p.numel() for p in model.parameters())),
        "scores": {"test": {**scores, "n": cfg.n_eval}, "train_subset": {**train_scores, "n": n_seen},
                   "baseline_most_common_train_caption": {"cider_d": baseline, "caption": common},
                   "test_matching": {**matching, "n": cfg.n_eval}},
        "loss_curve": curve,
        "samples": [{"prediction": p, "references": r} for p, r in zip(preds[:8], test_refs[:8])],
        "wall_time_s": {"data": round(t_data, 2), "train": round(t_train, 2), "eval": round(t_eval, 2),
                        "total": round(time.perf_counter() - t0, 2)},
        "steps_per_s": round(cfg.steps / t_train, 3),
        "machine": {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
        "versions": _versions(),
    }
    from repspace.outputs import staging_dir

    tmp = staging_dir(out)  # recognisable: a killed run's leftover is removed by the next one
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        manifest["wall_time_s"]["total"] = round(time.perf_counter() - t0, 2)
        (tmp / "pretrain_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _normal_permissions(tmp)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["output_dir"] = str(out)
    return manifest


def add_pretrain_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``pretrain`` sub-command to an ``argparse`` sub-parsers object."""
    d = PretrainConfig()
    p = subparsers.add_parser(
        "pretrain", help="pre-train the embedded tiny BLIP captioner on the shapes world",
        description="Train the tiny BLIP captioner from random initialisation on shapes-world "
                    "source-domain captions, report held-out CIDEr-D / BLEU-4, and write the model "
                    "folder (default: the package's embedded model).")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="model folder to write (default: repspace/models/embedded in the package)")
    p.add_argument("--steps", type=int, default=None, help=f"optimisation steps (default {d.steps})")
    p.add_argument("--seed", type=int, default=None, help=f"init / data-order seed (default {d.seed})")
    p.add_argument("--batch-size", type=int, default=None, help=f"images per step (default {d.batch_size})")
    p.add_argument("--n-train", type=int, default=None, help=f"train images (default {d.n_train})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--corpus", default=None, choices=sorted(RECIPES),
                   help=f"text targets (default {d.corpus}; 'canonical' = the v1 recipe)")
    p.add_argument("--quick", action="store_true",
                   help="tiny settings for smoke tests (4 steps on 64 images, seconds)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: fastest for this tiny model on few cores)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def run_pretrain(args: argparse.Namespace) -> int:
    """Run ``repspace pretrain`` from parsed arguments; prints the held-out scores."""
    base = QUICK if args.quick else PretrainConfig()
    given = {"steps": args.steps, "seed": args.seed, "batch_size": args.batch_size,
             "n_train": args.n_train, "lr": args.lr, "corpus": args.corpus}
    cfg = replace(base, **{k: v for k, v in given.items() if v is not None})
    m = pretrain(cfg, args.output, progress=not args.no_progress, threads=args.threads)
    s, b = m["scores"]["test"], m["scores"]["baseline_most_common_train_caption"]
    print(f"wrote {m['output_dir']} ({m['params'] / 1e6:.2f} M params, {m['wall_time_s']['total']:.0f} s)")
    print(f"held-out test (n={s['n']}): CIDEr-D {s['cider_d']:.3f}  BLEU-4 {s['bleu_4']:.3f}  "
          f"exact {s['exact']:.1%}  (baseline CIDEr-D {b['cider_d']:.3f})")
    mt = m["scores"]["test_matching"]
    print(f"held-out image-text matching: true caption {mt['positive']:.1%}, "
          f"hard negative {mt['hard_negative']:.1%} (chance 50%)")
    sys.stdout.flush()
    return 0
