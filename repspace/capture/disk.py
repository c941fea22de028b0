"""Disk sink: sharded safetensors + a JSON manifest, resumable, loadable lazily.

Layout of a capture directory::

    manifest.json             what was captured (see below), updated once per shard
    shard-00000.safetensors   {"base/encoder.layer.0": (rows, d), ...,
                               "base/encoder.layer.0#sample": (rows,) for tokens}
    ...

Every file is written to a temporary name and moved into place with ``os.replace``,
shard first, manifest second; the manifest only lists shards that are complete.  A
crash therefore leaves either the previous state or the new one, and re-running the
same capture with the same :class:`DiskSink` path resumes after the last listed shard
(the runner checks that the skipped input batches hash to the recorded ``data_hash``).

Manifest keys: ``format``, ``version``, ``models`` (per side: class, name/path, PEFT
type), ``layers``, ``sides``, ``streams``, ``pooling``, ``dtype``, ``n`` (samples),
``batches``, ``data_hash`` (chained SHA-256 of the input batches), ``complete``,
``shards`` (file, n, batches, data_hash).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from repspace.capture.inputs import chain_hash
from repspace.capture.sinks import CapturedBatch
from repspace.outputs import atomic_path, atomic_write_text

__all__ = ["CaptureReader", "DiskSink", "load_capture"]

FORMAT = "repspace-capture"
VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Settings that must agree for a resumed run to continue an interrupted one.
_RESUME_KEYS = ("models", "layers", "sides", "pooling", "dtype")


def _atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    with atomic_path(path, fsync=True) as tmp:  # a resumed run trusts every recorded shard
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


class DiskSink:
    """Write captured rows to ``path`` as safetensors shards of ~``shard_size`` samples.

    Parameters
    ----------
    path : directory (created if missing).
    shard_size : samples per shard (a shard holds whole batches, so it may be larger).
    dtype : ``"float32"`` (default), ``"float16"`` or ``"bfloat16"`` on disk.
    resume : continue an interrupted capture found at ``path`` (default).  With
        ``resume=False`` an existing capture is an error unless ``overwrite=True``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        shard_size: int = 4096,
        dtype: str = "float32",
        resume: bool = True,
        overwrite: bool = False,
    ):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}; got {dtype!r}")
        if not isinstance(shard_size, int) or shard_size < 1:
            raise ValueError(f"shard_size must be a positive integer; got {shard_size!r}")
        self.path = Path(path)
        self.shard_size, self.dtype = shard_size, dtype
        self.resume, self.overwrite = resume, overwrite
        self.manifest: dict = {}
        self.resume_hash = ""
        self._buffer: list[CapturedBatch] = []
        self._chain = ""

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def _write_manifest(self) -> None:
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=2), fsync=True)

    def start(self, info: dict) -> int:
        """Open (or resume) the capture; returns the number of input batches already stored."""
        self.path.mkdir(parents=True, exist_ok=True)
        for stray in self.path.glob(".*.tmp"):  # half-written files of a crashed run
            stray.unlink()
        fresh = {
            "format": FORMAT,
            "version": VERSION,
            **info,
            "dtype": self.dtype,
            "n": 0,
            "batches": 0,
            "data_hash": "",
            "complete": False,
            "shards": [],
        }
        if self.manifest_path.exists() and not self.overwrite:
            if not self.resume:
                raise ValueError(
                    f"{self.path} already holds a capture; pass resume=True to "
                    "continue it or overwrite=True to replace it"
                )
            old = json.loads(self.manifest_path.read_text())
            diff = [k for k in _RESUME_KEYS if old.get(k) != fresh.get(k)]
            if old.get("format") != FORMAT or diff:
                raise ValueError(
                    f"{self.path} holds a different capture (differs in {diff or ['format']}); "
                    "use another path or overwrite=True"
                )
            self.manifest = old
        else:
            for f in self.path.glob("shard-*.safetensors"):
                f.unlink()
            self.manifest = fresh
            self._write_manifest()
        listed = {s["file"] for s in self.manifest["shards"]}
        for f in self.path.glob("shard-*.safetensors"):  # written but never recorded
            if f.name not in listed:
                f.unlink()
        self.resume_hash = self._chain = self.manifest["data_hash"]
        return int(self.manifest["batches"])

    def update(self, captured: CapturedBatch) -> None:
        self._buffer.append(captured)
        if sum(c.n for c in self._buffer) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        cast = _DTYPES[self.dtype]
        tensors: dict[str, list[torch.Tensor]] = {}
        for c in self._buffer:
            for side, layers in c.sides.items():
                for name, rows in layers.items():
                    tensors.setdefault(f"{side}/{name}", []).append(rows.to("cpu", cast))
            for side, layers in c.index.items():
                for name, idx in layers.items():
                    tensors.setdefault(f"{side}/{name}#sample", []).append(idx.cpu().long())
            self._chain = chain_hash(self._chain, c.hash)
        n = sum(c.n for c in self._buffer)
        file = f"shard-{len(self.manifest['shards']):05d}.safetensors"
        try:
            merged = {k: torch.cat(v) for k, v in tensors.items()}
        except RuntimeError:
            raise ValueError(
                "pooling='none' needs every batch padded to the same length to "
                "share a shard; use shard_size=batch_size or pad to a fixed length"
            ) from None
        _atomic_save_tensors(self.path / file, merged, {"n": str(n)})
        m = self.manifest
        m.setdefault("streams", dict(self._buffer[0].streams))
        m["shards"].append(
            {"file": file, "n": n, "batches": len(self._buffer), "data_hash": self._chain}
        )
        m["n"] += n
        m["batches"] += len(self._buffer)
        m["data_hash"] = self._chain
        self._write_manifest()  # after the shard: the manifest never lists a partial file
        self._buffer = []

    def finish(self) -> None:
        self._flush()
        self.manifest["complete"] = True
        self._write_manifest()


class CaptureReader:
    """Lazy view of a capture directory (shards are memory-mapped on access).

    >>> cap = load_capture("runs/bert")
    >>> cap.layers, cap.n
    >>> x = cap["base", "encoder.layer.0"]        # (n, d) float32, this layer only
    >>> for shard in cap.iter_shards(): ...       # {side: {layer: Tensor}} one shard at a time
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mf = self.path / "manifest.json"
        if not mf.exists():
            raise ValueError(f"{self.path} has no manifest.json; is it a capture directory?")
        self.manifest = json.loads(mf.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{mf} is not a repspace capture manifest")

    layers = property(lambda self: list(self.manifest["layers"]))
    sides = property(lambda self: list(self.manifest["sides"]))
    n = property(lambda self: int(self.manifest["n"]))
    complete = property(lambda self: bool(self.manifest["complete"]))

    def _key(self, key) -> str:
        side, layer = key if isinstance(key, tuple) else (self.sides[0], key)
        if side not in self.sides or layer.split("#")[0] not in self.layers:
            raise ValueError(
                f"no capture for side {side!r}, layer {layer!r}; sides {self.sides}, "
                f"layers {self.layers}"
            )
        return f"{side}/{layer}"

    def _read(self, key: str) -> torch.Tensor:
        parts = []
        for shard in self.manifest["shards"]:
            with safe_open(self.path / shard["file"], framework="pt") as f:
                parts.append(f.get_tensor(key))
        if not parts:
            raise ValueError(f"{self.path} has no complete shard yet")
        return torch.cat(parts)

    def __getitem__(self, key: str | tuple[str, str]) -> torch.Tensor:
        """``reader[side, layer]`` (or ``reader[layer]`` for the first side) -> rows."""
        return self._read(self._key(key))

    def sample_index(self, side: str, layer: str) -> torch.Tensor:
        """Global sample number of each token row (pooling ``tokens`` only)."""
        return self._read(self._key((side, layer + "#sample")))

    def iter_shards(self) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
        """``{side: {layer: Tensor}}`` per shard, in capture order, one shard in memory."""
        for shard in self.manifest["shards"]:
            out: dict[str, dict[str, torch.Tensor]] = {}
            with safe_open(self.path / shard["file"], framework="pt") as f:
                for key in f.keys():
                    side, layer = key.split("/", 1)
                    if not layer.endswith("#sample"):
                        out.setdefault(side, {})[layer] = f.get_tensor(key)
            yield out

    def to_accumulator(self, acc=None):
        """Stream the stored base/tuned rows into a ``LayerwiseMoments`` (pooled captures)."""
        from repspace.statistics import LayerwiseMoments

        if set(self.sides) != {"base", "tuned"}:
            raise ValueError(
                f"to_accumulator needs a paired capture (base and tuned); this one "
                f"has sides {self.sides}"
            )
        acc = acc if acc is not None else LayerwiseMoments(pairs="matched")
        for shard in self.iter_shards():
            acc.update(shard["base"], shard["tuned"])
        return acc


def load_capture(path: str | os.PathLike) -> CaptureReader:
    """Open a capture directory written by :class:`DiskSink` (lazily)."""
    return CaptureReader(path)
