"""Command-line entry point (`repspace`)."""
from __future__ import annotations

import argparse
import sys

from repspace import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repspace",
        description="Measure how far fine-tuning moves a pre-trained model's representation space.",
    )
    parser.add_argument("--version", action="version", version=f"repspace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the main job on the embedded default")
    demo.add_argument("--num-samples", type=int, default=4096, help="probe samples (default 4096)")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "demo":
            from repspace.demo import main as demo_main

            return demo_main(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"repspace {args.command}: error: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
