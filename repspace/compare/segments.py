"""Per-segment metrics (issue 19.4, ``repspace compare --segments``): image tokens, text tokens
and the tuned side's virtual tokens measured separately, from the comparison's own capture pass.

A multimodal or prompt-learning model mixes token kinds in one sequence, and a pooled row
mixes their movements: a LoRA on the language model may leave the image tokens' states
nearly where they were and move the text's, and prompt tuning adds positions the base
never had.  Segments, per captured layer:

- ``image``: every token of a vision-tower layer, and in a LLaVA-style language model the
  positions of the image placeholder id (``config.image_token_id`` /
  ``image_token_index``) in ``input_ids``, which carry the projected image features;
- ``text``: the remaining valid tokens of the text stream (attention mask, virtual tokens
  stripped) and of a decoder stream;
- ``query``: the learned queries of a Q-Former / resampler layer;
- ``virtual``: the positions a prompt-learning adapter prepends (prompt tuning, P-tuning;
  prefix tuning adds only keys/values, so there are none).  The base has no such
  positions, so nothing is paired with them.

For each segment present on both sides the rows are the per-sample means over the
segment's tokens, x_i (base) and y_i (tuned), over the samples that have at least one
token of it; reported per layer and segment: linear CKA (Kornblith et al., 2019),
effective rank (Roy & Vetterli, 2007) of each side, the mean relative shift
(1/n) Σᵢ ‖yᵢ − xᵢ‖ / ‖xᵢ‖, and n.

For the virtual segment (tuned side alone; the first ``virtual_rows`` token rows are kept):

- ``virtual_effective_rank``: effective rank of the centred virtual-token rows (how many
  directions the learned prompt spans at that layer);
- ``virtual_norm_ratio``: mean ‖h‖ over virtual tokens / mean ‖h‖ over text tokens (does
  the prompt dominate the residual stream?);
- ``virtual_sample_share``: the share of the virtual tokens' total variance that lies
  between samples at a fixed position, Σₚ Σᵢ ‖h_{i,p} − h̄_p‖² / Σ_{i,p} ‖h_{i,p} − h̄‖²:
  0 when the prompt's states do not depend on the input (a causal model's leading virtual
  tokens see only each other), towards 1 when the input reshapes them.  Computed from
  float64 sums shifted by the first batch's per-position means (no cancellation of large
  means).

Memory: the pooled rows are kept, n·d float64 values per layer, segment and side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from repspace.capture.tokens import _STREAM_KEYS, _to_tokens, align_tokens

__all__ = ["SEGMENTS", "SegmentCollector", "split_segments", "segment_metrics"]

SEGMENTS = ("text", "image", "query", "virtual")
VIRTUAL_ROWS = 4096  # virtual-token rows kept per layer for the effective rank


def split_segments(
    name: str,
    raw: torch.Tensor,
    batch: Mapping[str, object],
    stream: str,
    n_virtual: int = 0,
    image_token: int | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{segment: (states (b, t, d), valid (b, t) bool)}`` of one captured layer's states."""
    tokens = _to_tokens(raw, name)
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if stream in ("text", "decoder") and n_virtual:
        mask_key, ids_key = _STREAM_KEYS[stream]
        ref = batch.get(mask_key, batch.get(ids_key))
        fits = (
            torch.is_tensor(ref) and ref.ndim == 2 and tokens.shape[1] == ref.shape[1] + n_virtual
        )
        if fits or not torch.is_tensor(ref):
            virtual = tokens[:, :n_virtual]
            out["virtual"] = (
                virtual,
                torch.ones(virtual.shape[:2], dtype=torch.bool, device=virtual.device),
            )
    states, valid = align_tokens(
        name, raw, batch, stream, n_virtual, image_token=None, modality="all"
    )
    if valid is None:
        valid = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
    if stream == "vision":
        out["image"] = (states, valid)
        return out
    if stream == "query":
        out["query"] = (states, valid)
        return out
    ids = batch.get("input_ids")
    if (
        stream == "text"
        and image_token is not None
        and torch.is_tensor(ids)
        and ids.shape[:2] == states.shape[:2]
    ):
        is_image = ids.to(states.device) == image_token
        if bool((valid & is_image).any()):
            out["image"] = (states, valid & is_image)
        out["text"] = (states, valid & ~is_image)
        return out
    out["text"] = (states, valid)
    return out


def _mean_rows(states: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample masked means (float64) of the samples with ≥ 1 valid token, and which."""
    counts = valid.sum(1)
    has = counts > 0
    w = valid.to(torch.float64)[:, None, :]
    means = torch.bmm(w, states.to(torch.float64))[:, 0] / counts.clamp_min(1)[:, None]
    return means[has], has  # clamp_min only guards rows dropped right here (count 0)


class _Virtual:
    """Streaming statistics of one layer's virtual tokens (see the module docstring)."""

    def __init__(self):
        self.rows: list[torch.Tensor] = []
        self.kept = 0
        self.shift: torch.Tensor | None = None  # (v, d) first batch's per-position mean
        self.n = 0
        self.s1 = self.s2 = None  # per-position Σ (h − shift), Σ ‖h − shift‖²
        self.norm_sum, self.tokens = 0.0, 0
        self.text_norm_sum, self.text_tokens = 0.0, 0

    def add(self, states: torch.Tensor) -> None:
        h = states.detach().to("cpu", torch.float64)  # (b, v, d)
        if self.shift is None:
            self.shift = h.mean(0)
            self.s1 = torch.zeros_like(self.shift)
            self.s2 = torch.zeros(h.shape[1], dtype=torch.float64)
        c = h - self.shift
        self.s1 += c.sum(0)
        self.s2 += (c * c).sum((0, 2))
        self.n += h.shape[0]
        norms = h.norm(dim=-1)
        self.norm_sum += float(norms.sum())
        self.tokens += norms.numel()
        if self.kept < VIRTUAL_ROWS:
            flat = h.reshape(-1, h.shape[-1])[: VIRTUAL_ROWS - self.kept]
            self.rows.append(flat)
            self.kept += flat.shape[0]

    def add_text(self, states: torch.Tensor, valid: torch.Tensor) -> None:
        norms = states.detach().to("cpu", torch.float64).norm(dim=-1)[valid.cpu()]
        self.text_norm_sum += float(norms.sum())
        self.text_tokens += norms.numel()

    def metrics(self) -> dict[str, float]:
        from repspace.metrics.spectrum import effective_rank

        v = self.s2.shape[0]
        # Per position p, with c = h − shift: Σᵢ‖hᵢₚ − mₚ‖² = Σᵢ‖cᵢₚ‖² − ‖Σᵢ cᵢₚ‖²/n (the
        # shift cancels in deviations; it only keeps the sums small), mₚ = Σᵢ cᵢₚ/n + shiftₚ.
        within = float((self.s2 - (self.s1 * self.s1).sum(1) / self.n).sum())
        means = self.s1 / self.n + self.shift  # (v, d) per-position means
        between = float(self.n * ((means - means.mean(0)) ** 2).sum())
        total = within + between  # the cross term Σᵢ (hᵢₚ − mₚ) is zero
        rows = torch.cat(self.rows)
        out = {
            "virtual_tokens": float(v),
            "virtual_samples": float(self.n),
            "virtual_effective_rank": effective_rank(rows) if rows.shape[0] > 1 else math.nan,
            "virtual_sample_share": within / total if total > 0 else math.nan,
            "virtual_norm_ratio": (self.norm_sum / self.tokens)
            / (self.text_norm_sum / self.text_tokens)
            if self.text_tokens
            else math.nan,
        }
        return out


class SegmentCollector:
    """Receives every side's raw layer states from the capture loop (``capture_sides``'s
    ``tap``) and keeps per-segment pooled rows keyed by (side, layer, segment)."""

    def __init__(self):
        self.rows: dict[tuple[str, str, str], list[torch.Tensor]] = {}
        self.ids: dict[tuple[str, str, str], list[torch.Tensor]] = {}
        self.virtual: dict[tuple[str, str], _Virtual] = {}

    def __call__(
        self,
        side: str,
        layer: str,
        raw: torch.Tensor,
        batch,
        stream: str,
        n_virtual: int,
        image_token: int | None,
        offset: int,
    ) -> None:
        parts = split_segments(layer, raw, batch, stream, n_virtual, image_token)
        for seg, (states, valid) in parts.items():
            if seg == "virtual":
                self.virtual.setdefault((side, layer), _Virtual()).add(states)
                continue
            means, has = _mean_rows(states, valid)
            key = (side, layer, seg)
            self.rows.setdefault(key, []).append(means.cpu())
            self.ids.setdefault(key, []).append(torch.arange(states.shape[0])[has.cpu()] + offset)
        if "virtual" in parts and "text" in parts:
            self.virtual[(side, layer)].add_text(*parts["text"])

    def side(self, side: str, layer: str, seg: str) -> tuple[torch.Tensor, np.ndarray] | None:
        key = (side, layer, seg)
        if key not in self.rows:
            return None
        return torch.cat(self.rows[key]), torch.cat(self.ids[key]).numpy()


def segment_metrics(
    collector: SegmentCollector, base_side: str, tuned_side: str, layers: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """``{layer: {segment: metrics}}`` of one tuned side against the base side."""
    from repspace.metrics import linear_cka
    from repspace.metrics.spectrum import effective_rank

    out: dict[str, dict[str, dict[str, float]]] = {}
    for layer in layers:
        row: dict[str, dict[str, float]] = {}
        for seg in SEGMENTS[:3]:
            a, b = collector.side(base_side, layer, seg), collector.side(tuned_side, layer, seg)
            if a is None or b is None:
                continue
            (x, ix), (y, iy) = a, b
            common, ia, ib = np.intersect1d(ix, iy, assume_unique=True, return_indices=True)
            x, y = x[ia].double(), y[ib].double()
            m: dict[str, float] = {"n": float(len(common))}
            if len(common) >= 4:
                m["linear_cka"] = linear_cka(x, y, precision="float64")
                m["effective_rank_base"] = effective_rank(x)
                m["effective_rank_tuned"] = effective_rank(y)
                if x.shape[1] == y.shape[1]:
                    m["relative_shift_mean"] = float(((y - x).norm(dim=1) / x.norm(dim=1)).mean())
            row[seg] = m
        v = collector.virtual.get((tuned_side, layer))
        if v is not None:
            row["virtual"] = v.metrics()
        if row:
            out[layer] = row
    return out
