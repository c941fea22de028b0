"""`repspace pretrain [-o DIR] [--quick] ...`: the options, mapped onto
:class:`~repspace.training.pretrain.config.PretrainConfig` in one place, then
:func:`~repspace.training.pretrain.pretrain` and its summary lines."""

from __future__ import annotations

import argparse
import sys

from repspace._constraints import SettingError
from repspace.training.pretrain import QUICK, PretrainConfig, pretrain, settings
from repspace.training.pretrain.config import RECIPES

__all__ = ["OPTION_OF", "add_pretrain_parser", "config_from_args", "run_pretrain"]

# API name -> the option that sets it: one table, so an error names what the caller typed
OPTION_OF = {
    "steps": "--steps",
    "seed": "--seed",
    "batch_size": "--batch-size",
    "n_train": "--n-train",
    "lr": "--lr",
    "corpus": "--corpus",
    "threads": "--threads",
    "output_dir": "--output",
}


def add_pretrain_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``pretrain`` sub-command to an ``argparse`` sub-parsers object."""
    d = PretrainConfig()
    p = subparsers.add_parser(
        "pretrain",
        help="pre-train the embedded tiny BLIP captioner on the shapes world",
        description="Train the tiny BLIP captioner from random initialisation on shapes-world "
        "source-domain captions, report held-out CIDEr-D / BLEU-4, and write the model "
        "folder (default: the package's embedded model).",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DIR",
        help="model folder to write (default: repspace/models/embedded in the package)",
    )
    p.add_argument(
        "--steps", type=int, default=None, help=f"optimisation steps (default {d.steps})"
    )
    p.add_argument(
        "--seed", type=int, default=None, help=f"init / data-order seed (default {d.seed})"
    )
    p.add_argument(
        "--batch-size", type=int, default=None, help=f"images per step (default {d.batch_size})"
    )
    p.add_argument("--n-train", type=int, default=None, help=f"train images (default {d.n_train})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {d.lr})")
    p.add_argument(
        "--corpus",
        default=None,
        choices=sorted(RECIPES),
        help=f"text targets (default {d.corpus}; 'canonical' = the v1 recipe)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for smoke tests (4 steps on 64 images, seconds)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: fastest for this tiny model on few cores)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """The API's settings for these options; a bad one is a one-line error naming the option."""
    base = QUICK if args.quick else PretrainConfig()
    given = {
        "steps": args.steps,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "n_train": args.n_train,
        "lr": args.lr,
        "corpus": args.corpus,
    }
    try:
        return settings(base, args.threads, **{k: v for k, v in given.items() if v is not None})
    except SettingError as exc:
        raise exc.in_vocabulary(OPTION_OF) from None


def run_pretrain(args: argparse.Namespace) -> int:
    """Run ``repspace pretrain`` from parsed arguments; prints the held-out scores."""
    cfg = config_from_args(args)
    m = pretrain(cfg, args.output, progress=not args.no_progress, threads=args.threads)
    s, b = m["scores"]["test"], m["scores"]["baseline_most_common_train_caption"]
    print(
        f"wrote {m['output_dir']} ({m['params'] / 1e6:.2f} M params, {m['wall_time_s']['total']:.0f} s)"
    )
    print(
        f"held-out test (n={s['n']}): CIDEr-D {s['cider_d']:.3f}  BLEU-4 {s['bleu_4']:.3f}  "
        f"exact {s['exact']:.1%}  (baseline CIDEr-D {b['cider_d']:.3f})"
    )
    mt = m["scores"]["test_matching"]
    print(
        f"held-out image-text matching: true caption {mt['positive']:.1%}, "
        f"hard negative {mt['hard_negative']:.1%} (chance 50%)"
    )
    sys.stdout.flush()
    return 0
