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

The folder (weights, config, processor, ``pretrain_manifest.json``) is written through
:mod:`repspace.outputs` like every command's output: the location is checked before any
work, the folder is staged beside it, given the modes the umask asks for and published with
one rename, so ``output_dir`` is either the old folder or the complete new one, never a
partial one; an existing folder is only replaced when it is a pretrain output.

Modules: :mod:`.config` (the settings, :class:`PretrainConfig`), :mod:`.loop` (data order,
schedule, losses), :mod:`.cli` (``repspace pretrain``); this one is the API,
:func:`pretrain`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

from repspace.outputs import apply_umask, check_output, has_json_schema, publish, staging_dir
from repspace.training.pretrain.config import QUICK, RECIPE, RECIPES, TARGET_NOTES, PretrainConfig
from repspace.training.pretrain.loop import render, train_loop

__all__ = ["PretrainConfig", "QUICK", "RECIPE", "RECIPES", "SCHEMA", "pretrain", "settings"]

SCHEMA = "repspace.pretrain"  # pretrain_manifest.json's: marks a folder this command wrote


def _versions() -> dict:
    import numpy
    import torch
    import transformers

    from repspace import __version__

    return {
        "repspace": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def pretrain(
    config: PretrainConfig | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
    threads: int | None = 1,
    **options,
) -> dict:
    """Run the recipe and write the model folder to ``output_dir`` (default: the package's
    embedded folder, :func:`repspace.models.embedded_path`).  Returns the manifest dict.

    ``config`` (default :class:`PretrainConfig`'s defaults) with its fields overridden by
    keyword ``options`` (``pretrain(QUICK, out, steps=8)``); an unknown name or a bad value
    fails in one line naming it, as does a bad ``threads`` -- before the output folder is
    checked, any data is rendered or any model is built.

    ``threads``: torch intra-op threads while pretraining (restored afterwards; ``None`` keeps
    the current setting).  1 is the default because this model's matrices are too small to
    gain from more: on a shared 2-core machine 1 thread ran a batch-64 step in 0.24 s and 2
    threads in 0.47-0.94 s (docs/embedded_model.md).
    """
    cfg = settings(config, threads, **options)
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _pretrain(cfg, output_dir, progress)
    finally:
        torch.set_num_threads(before)


def settings(
    config: PretrainConfig | None = None, threads: int | None = 1, **options
) -> PretrainConfig:
    """The run's settings, checked: ``config`` with ``options`` replacing its fields, and
    ``threads`` (a count torch can run: 1 to :func:`repspace._threads.max_threads`, or None)."""
    from repspace._constraints import Interval, SettingError, validate
    from repspace._threads import THREADS_PER_CORE, max_threads

    if config is not None and not isinstance(config, PretrainConfig):
        raise SettingError("config", config, "a PretrainConfig or None", "pretrain")
    try:
        validate(
            {"threads": [Interval(int, 1, max_threads()), None]},
            {"threads": threads},
            owner="pretrain",
        )
    except SettingError as exc:  # the bound is this machine's: say where it comes from
        raise SettingError(
            exc.field,
            exc.value,
            exc.expected,
            exc.owner,
            f"{THREADS_PER_CORE} per CPU core of this machine",
        ) from None
    cfg = PretrainConfig() if config is None else config
    if options:
        PretrainConfig.from_options(**options)  # unknown names and bad values, named
        cfg = replace(cfg, **options)
    return cfg


def _is_pretrain_folder(folder: Path) -> bool:
    return has_json_schema(folder, "pretrain_manifest.json", SCHEMA)


def _pretrain(cfg: PretrainConfig, output_dir, progress: bool) -> dict:
    import torch
    import transformers

    from repspace.data import ShapesWorld
    from repspace.evaluation import cider_d
    from repspace.models import (
        build_processor,
        embedded_path,
        evaluate_captions,
        generate_captions,
        pixel_values,
        tiny_blip_config,
    )
    from repspace.training.pretrain_corpus import (
        build_targets,
        build_text_stream,
        matching_accuracy,
    )
    from repspace.training.trainer import seed_everything

    out = Path(
        os.path.abspath(Path(embedded_path() if output_dir is None else output_dir).expanduser())
    )
    # an earlier pretrain output is replaced without --overwrite: rerunning the recipe over
    # the embedded model is what the command is for
    check_output(
        out,
        overwrite=True,
        is_ours=_is_pretrain_folder,
        option="-o",
        kind="`repspace pretrain` model",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    world = ShapesWorld(
        seed=cfg.data_seed,
        domain="source",
        image_size=cfg.image_size,
        n_train=cfg.n_train,
        n_test=cfg.n_eval,
    )
    train_images, train_refs, train_scenes = render(world, "train", cfg.n_train)
    test_images, test_refs, test_scenes = render(world, "test", cfg.n_eval)
    t_data = time.perf_counter() - t0

    processor = build_processor(cfg.image_size)
    tok = processor.tokenizer
    targets = build_targets(tok, train_scenes, cfg.corpus, cfg.seed)
    text = (
        build_text_stream(tok, cfg.data_seed, max(1, cfg.n_train // 2), cfg.seed)
        if cfg.corpus.endswith("+text")
        else None
    )
    seed_everything(
        cfg.seed
    )  # the init draws from torch only; python/numpy as `repspace train` does
    model = transformers.BlipForConditionalGeneration(
        tiny_blip_config(image_size=cfg.image_size, tokenizer=tok, **cfg.architecture)
    )
    curve, t_train = train_loop(
        model, torch.from_numpy(train_images), targets, cfg, progress, text=text
    )

    t1 = time.perf_counter()
    preds = generate_captions(
        model, tok, pixel_values(test_images), max_new_tokens=cfg.max_new_tokens
    )
    scores = evaluate_captions(preds, test_refs)
    n_seen = min(cfg.n_train, cfg.n_eval)
    train_preds = generate_captions(
        model, tok, pixel_values(train_images[:n_seen]), max_new_tokens=cfg.max_new_tokens
    )
    train_scores = evaluate_captions(train_preds, train_refs[:n_seen])
    common = Counter(r[0] for r in train_refs).most_common(1)[0][0]
    baseline = cider_d([common] * len(test_refs), test_refs)
    matching = matching_accuracy(model, tok, pixel_values(test_images), test_scenes, seed=cfg.seed)
    t_eval = time.perf_counter() - t1

    manifest = {
        "schema": SCHEMA,
        "version": 1,
        "recipe": RECIPES[cfg.corpus],
        "command": "repspace pretrain" + ("" if output_dir is None else f" --output {out}"),
        "config": asdict(cfg),
        "seed": cfg.seed,
        "steps": cfg.steps,
        "data": {
            "world": asdict(world.config),
            "split_train": "train",
            "split_eval": "test",
            "target": TARGET_NOTES[cfg.corpus],
            "corpus": cfg.corpus,
            "sample_targets": targets.texts[:2],
            "text_stream": None
            if text is None
            else {"texts": len(text.texts), "samples": text.texts[:4]},
            "n_train": cfg.n_train,
            "n_eval": cfg.n_eval,
        },
        "params": int(sum(p.numel() for p in model.parameters())),
        "scores": {
            "test": {**scores, "n": cfg.n_eval},
            "train_subset": {**train_scores, "n": n_seen},
            "baseline_most_common_train_caption": {"cider_d": baseline, "caption": common},
            "test_matching": {**matching, "n": cfg.n_eval},
        },
        "loss_curve": curve,
        "samples": [{"prediction": p, "references": r} for p, r in zip(preds[:8], test_refs[:8])],
        "wall_time_s": {
            "data": round(t_data, 2),
            "train": round(t_train, 2),
            "eval": round(t_eval, 2),
            "total": round(time.perf_counter() - t0, 2),
        },
        "steps_per_s": round(cfg.steps / t_train, 3),
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "versions": _versions(),
    }
    tmp = staging_dir(out)  # recognisable: a killed run's leftover is removed by the next one
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        manifest["wall_time_s"]["total"] = round(time.perf_counter() - t0, 2)
        (tmp / "pretrain_manifest.json").write_text(
            json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
        )
        apply_umask(tmp)  # mkdtemp / safetensors made owner-only entries
        publish(tmp, out, overwrite=True, is_ours=_is_pretrain_folder, kind="pretrained model")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["output_dir"] = str(out)
    return manifest
