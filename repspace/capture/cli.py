"""``repspace layers MODEL``: print the selectable layer names of a checkpoint.

Wire into :mod:`repspace.cli` with::

    from repspace.capture.cli import add_layers_parser, run_layers
    add_layers_parser(sub)                     # in build_parser()
    if args.command == "layers": return run_layers(args)

The model is built from its ``config.json`` on the ``meta`` device: no weights are
read, so listing a 7B checkpoint is instant and needs no memory.

A repspace training run folder is listed when its loader is registered, i.e. once
:mod:`repspace.training` is imported: ``repspace layers`` (:mod:`repspace.cli`) does that;
this module, on the capture floor, does not (``python -m repspace.capture.cli`` lists every
other kind of MODEL).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch import nn

from repspace.layer_table import canonical_modules, split_input_suffix
from repspace.capture.presets import PRESETS, resolve_preset
from repspace.capture.selection import resolve_layers

__all__ = ["add_layers_parser", "format_flat", "format_tree", "load_skeleton", "run_layers"]


def add_layers_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``layers`` sub-command to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser(
        "layers",
        help="list the selectable layer names of a model checkpoint",
        description="Print the canonical layer names (usable as `layers=` globs/regexes/presets) "
        "of a local Hugging Face checkpoint directory or config.json.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="checkpoint directory, config.json or hub id "
        "(a PEFT adapter directory lists its base model's names)",
    )
    p.add_argument("--format", choices=("tree", "flat"), default="tree", help="output layout")
    p.add_argument("--depth", type=int, default=None, help="tree: deepest level to print")
    p.add_argument(
        "--select",
        metavar="PATTERN",
        action="append",
        help=f"print only what a name/glob/'re:' regex/preset ({', '.join(PRESETS)}) selects",
    )
    p.add_argument(
        "--model-class",
        default=None,
        help="transformers class to build (default: config.architectures[0])",
    )
    p.add_argument(
        "--base-override",
        "--base",
        dest="base",
        default=None,
        help="as in compare: the model a PEFT adapter or a bare weights file MODEL "
        "applies onto (its names are listed); --base is the older spelling",
    )
    p.add_argument(
        "--config",
        default=None,
        help="as in compare: model config (folder or config.json) naming the "
        "architecture of a bare weights file MODEL",
    )
    return p


def load_skeleton(
    path: str | Path,
    model_class: str | None = None,
    base: str | None = None,
    config: str | None = None,
) -> nn.Module:
    """The model of any spec compare accepts as a model, to list its names: a model folder,
    config.json or hub id is built on the meta device (no weights loaded); ``embedded`` is
    the shipped model's folder; a repspace run is loaded as compare loads it; a PEFT adapter
    lists its base's names (``base`` or the one it records, local or hub); a bare weights
    file the names of the architecture it is applied to (``base`` or ``config``, as compare
    takes them: adapters and weights files keep the names of the model under them)."""
    import transformers

    from repspace.checkpoints.loader import MANIFEST_NAME, resolve_spec
    from repspace.checkpoints.state_dict import STATE_DICT_SUFFIXES

    spec = resolve_spec(str(path))  # "embedded": the shipped model's folder, as compare reads it
    path = Path(spec)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return _load_run(spec)
    if path.is_file() and path.suffix.lower() in STATE_DICT_SUFFIXES:
        if base is None and config is None:
            raise ValueError(
                f"{spec}: a bare weights file has no architecture; pass --base-override (the "
                "checkpoint it applies to) or --config, as compare takes them"
            )
        return load_skeleton(config if config is not None else base, model_class)
    if not path.exists():
        from repspace.checkpoints import CheckpointError, detect_kind

        try:
            kind = detect_kind(spec)
        except CheckpointError:
            kind = None
        if kind != "hub":
            raise ValueError(
                f"MODEL {spec!r} does not exist; pass a checkpoint directory, a "
                "config.json or a Hugging Face hub id"
            )
        try:  # a hub id: only its config.json is fetched (or read from the cache)
            config = transformers.AutoConfig.from_pretrained(spec, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ValueError(
                f"cannot fetch the config of hub model {spec!r} ({first}); on an "
                "offline machine pass a local checkpoint directory"
            ) from None
        return _build_on_meta(config, model_class)
    from repspace.checkpoints.loader import adapter_config
    from repspace.checkpoints.remote_code import refuse_remote_code

    refuse_remote_code(path)  # before transformers reads it: never run or prompt for its code
    if (
        path.is_dir()
        and (path / "adapter_config.json").exists()
        and not (path / "config.json").exists()
    ):
        adapter = adapter_config(path)  # read and checked as compare reads it
        named = base or adapter.get("base_model_name_or_path")
        if not named:
            raise ValueError(
                f"{path} is a PEFT adapter that does not name its base model "
                "(base_model_name_or_path is empty); pass --base-override"
            )
        if not base and not Path(named).exists() and named.startswith(("/", ".", "~")):
            raise ValueError(
                f"{path}: its base model {named} does not exist on this machine; "
                "pass --base-override with the base model folder"
            )
        return load_skeleton(named, model_class)  # a folder or a hub id, as compare loads it
    if path.is_dir() and (path / "config.json").is_file():
        from repspace.checkpoints.precision import read_config
        from repspace.checkpoints.sizes import check_layer_counts, stored_weights

        # a config claiming 20 000 layers on a 3-layer checkpoint: refused before the skeleton
        # (and the config's per-layer lists) are built
        check_layer_counts(
            path / "config.json", read_config(path / "config.json"), stored_weights(path)
        )
    try:
        config = transformers.AutoConfig.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read a transformers config from {str(path)!r}: {exc}") from None
    return _build_on_meta(config, model_class)


def _load_run(spec: str) -> nn.Module:
    """A repspace training run: loaded as compare loads it (its method family builds the model
    onto its base), so the names listed are the ones compare selects.  Its loader is
    registered with :mod:`repspace.checkpoints` by whoever imported :mod:`repspace.training`
    (the ``repspace`` entry point does for this command); this module sits below training and
    never imports it (docs/development.md, "Layers")."""
    from repspace.checkpoints import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(spec).model
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None


def _build_on_meta(config, model_class: str | None) -> nn.Module:
    import torch
    import transformers

    from repspace.checkpoints.remote_code import check_model_class

    archs = config.architectures or [None]
    name = model_class or (archs[0] if isinstance(archs, (list, tuple)) else archs)
    # A model class only: `architectures` is the checkpoint's text, never a function to call.
    cls = (
        check_model_class(name, "--model-class" if model_class else "config.json") if name else None
    )
    if name and cls is None:
        raise ValueError(f"--model-class {name!r} is not a transformers class")
    with torch.device("meta"):
        return (
            cls(config)
            if cls is not None
            else transformers.AutoModel.from_config(config, trust_remote_code=False)
        )


def _annotations(model: nn.Module) -> dict[str, list[str]]:
    marks: dict[str, list[str]] = {}
    for preset in PRESETS:
        for n in resolve_preset(model, preset):
            marks.setdefault(n, []).append(preset)
    return marks


def format_flat(model: nn.Module, names: list[str] | None = None) -> str:
    """One canonical name per line, with the class and the presets that include it."""
    modules, marks = canonical_modules(model), _annotations(model)
    names = names if names is not None else list(modules)
    lines = []
    for n in names:
        cls = type(modules[split_input_suffix(n)[0]]).__name__
        tag = f"  [{', '.join(marks[n])}]" if n in marks else ""
        lines.append(f"{n}  ({cls}){tag}")
    return "\n".join(lines)


def format_tree(model: nn.Module, depth: int | None = None) -> str:
    """Indented module tree of the canonical names (presets marked, ``depth`` levels)."""
    modules, marks = canonical_modules(model), _annotations(model)
    lines = [type(model).__name__]
    printed: set[str] = set()
    for n, m in modules.items():
        level = n.count(".")
        parts = n.split(".")
        for i in range(1, len(parts)):  # containers (ModuleList) are shown, not selectable
            anc = ".".join(parts[:i])
            if anc not in modules and anc not in printed and (depth is None or i - 1 < depth):
                lines.append(f"{'  ' * i}{parts[i - 1]}  (container)")
                printed.add(anc)
        if depth is not None and level >= depth:
            continue
        tags = list(marks.get(n, [])) + [f"{p} (input)" for p in marks.get(n + ":input", [])]
        tag = f"  [{', '.join(tags)}]" if tags else ""
        lines.append(f"{'  ' * (level + 1)}{n.rsplit('.', 1)[-1]}  ({type(m).__name__}){tag}")
    return "\n".join(lines)


def run_layers(args: argparse.Namespace) -> int:
    """Execute ``repspace layers``; returns the exit code (2 on bad input)."""
    try:
        model = load_skeleton(
            args.model,
            getattr(args, "model_class", None),
            getattr(args, "base", None),
            getattr(args, "config", None),
        )
        if getattr(args, "select", None):
            print(format_flat(model, resolve_layers(model, args.select)))
        elif args.format == "flat":
            print(format_flat(model))
        else:
            print(format_tree(model, getattr(args, "depth", None)))
    except ValueError as exc:
        from repspace.cli_errors import one_line

        print(f"repspace layers: error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m repspace.capture.cli MODEL``."""
    parser = argparse.ArgumentParser(prog="repspace")
    add_layers_parser(parser.add_subparsers(dest="command", required=True))
    return run_layers(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
