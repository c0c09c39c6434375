"""Windowed, streaming label propagation: the CRW/SFC protocol without the full affinity matrix.

Protocol (CRW ``test.py`` as used by SFC ``test_vos.py``; see docs/protocol.md):

* frame 0 carries the given soft one-hot labels and is its own prediction;
* target frame ``t >= 1`` attends to (a) every location of frame 0 (long-term memory, no radius) and
  (b) the ``context`` = m preceding frames ``t-m .. t-1``, indices below 0 clamped to 0 (the official
  code pads the video with m copies of frame 0), each restricted to locations strictly closer than
  ``radius`` feature cells (Euclidean) to the query location;
* the ``topk`` largest cosine similarities over all those keys are kept, ``softmax(sim / temperature)``
  weights them and the prediction is the weighted sum of the keys' soft labels;
* predictions (soft, not argmaxed) are the labels of later frames.

Instead of the official (h*w) x ((1+m)*h*w) affinity per frame, queries are processed in small
spatial tiles: a tile of ``th x tw`` queries is scored with one GEMM against the first frame and one
GEMM against the (th + 2r) x (tw + 2r) key window of the m context frames, masked to the radius.
Context features live in a ring buffer of m + 1 frames, so memory does not grow with video length,
and everything runs on the device of the input features (CUDA when available).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from sfc.propagation.blas import matmul

DEFAULT_TILE_CPU = (8, 8)
DEFAULT_TILE_CUDA = (16, 32)


def context_frame_indices(t: int, context: int) -> list[int]:
    """Short-term memory of target frame ``t``: frames ``t-m .. t-1`` with negative indices clamped to 0.

    This reproduces CRW's ``context_index_bank`` over a video padded with ``context`` copies of frame 0.
    """
    return [max(0, t - context + j) for j in range(context)]


def validate_inputs(
    features: torch.Tensor,
    first_labels: torch.Tensor,
    *,
    topk: int,
    temperature: float,
    context: int,
) -> None:
    """Raise ``ValueError`` with a precise message when propagation inputs are inconsistent."""
    if features.dim() != 4:
        raise ValueError(f"features must be (T, C, h, w); got shape {tuple(features.shape)}")
    if first_labels.dim() != 3:
        raise ValueError(f"first_labels must be (h, w, K); got shape {tuple(first_labels.shape)}")
    if tuple(first_labels.shape[:2]) != tuple(features.shape[-2:]):
        raise ValueError(
            f"first_labels spatial size {tuple(first_labels.shape[:2])} != feature size "
            f"{tuple(features.shape[-2:])}"
        )
    _validate_params(topk=topk, temperature=temperature, context=context, hw=features.shape[-2] * features.shape[-1])


def _validate_params(*, topk: int, temperature: float, context: int, hw: int) -> None:
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    if topk > hw:
        raise ValueError(f"topk={topk} exceeds the {hw} locations of the first frame")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")


class Propagator:
    """Streaming propagation state: feed target frames one at a time with :meth:`step`.

    Memory layout (why it is fast): the short-term memory is a ring of ``m + 1`` frame slots stored
    as overlapping *column bands* ``(n_bands, h, slots, band_width, C)``, one band per column of query
    tiles. The key window of a query tile (its rows +- r' in every slot) is then a single contiguous
    ``(rows * slots * band_width, C)`` matrix: one GEMM per tile, no per-tile copies. Slots that are
    not in the current context are masked out; while ``t <= m`` frame 0 appears several times in the
    context (the official padding), which is handled exactly by repeating its own top-k candidates.

    Args:
        first_features: (C, h, w) L2-normalised features of frame 0.
        first_labels: (h, w, K) soft one-hot labels of frame 0.
        topk: neighbours kept per query (paper: 10 FC-only, 15 SFC on DAVIS).
        temperature: softmax temperature (paper: 0.05 FC-only, 0.1 SFC).
        radius: strict radius r' in feature cells for the context frames (paper: 12 / 15).
        context: number m of preceding frames attended (paper: 20).
        tile: (th, tw) query tile; a speed/memory knob only (results do not depend on it).
        query_chunk: queries scored at once against the first frame (memory knob).
    """

    def __init__(
        self,
        first_features: torch.Tensor,
        first_labels: torch.Tensor,
        *,
        topk: int,
        temperature: float,
        radius: float,
        context: int,
        tile: tuple[int, int] | None = None,
        query_chunk: int = 1024,
    ) -> None:
        if first_features.dim() != 3:
            raise ValueError(f"first_features must be (C, h, w); got {tuple(first_features.shape)}")
        C, h, w = first_features.shape
        if first_labels.dim() != 3 or tuple(first_labels.shape[:2]) != (h, w):
            raise ValueError(
                f"first_labels must be (h, w, K) with (h, w) = {(h, w)}; got {tuple(first_labels.shape)}"
            )
        _validate_params(topk=topk, temperature=temperature, context=context, hw=h * w)
        self.device = first_features.device
        self.C, self.h, self.w = C, h, w
        self.K = first_labels.shape[-1]
        self.topk, self.temperature, self.radius, self.context = topk, float(temperature), float(radius), context
        self.query_chunk = query_chunk
        if tile is None:
            tile = DEFAULT_TILE_CUDA if self.device.type == "cuda" else DEFAULT_TILE_CPU
        self.th, self.tw = min(tile[0], h), min(tile[1], w)
        # Largest integer offset strictly inside the radius (none if radius <= 0: no short-term keys).
        reach = math.ceil(self.radius) - 1 if self.radius > 0 else -1
        self.use_window = context > 0 and reach >= 0
        self.py, self.px = max(0, min(reach, h - 1)), max(0, min(reach, w - 1))
        self.n_tx = math.ceil(w / self.tw)
        self.bw = self.tw + 2 * self.px  # band width (columns) per tile column

        f0 = first_features.float()
        self.keys0 = f0.reshape(C, h * w).contiguous()  # (C, hw)
        self.labels0 = first_labels.float().reshape(h * w, self.K).contiguous()  # (hw, K)
        if self.use_window:
            # Slot 0 = frame 0; frame f >= 1 lives in slot 1 + (f - 1) % m.
            self.n_slots = 1 + context
            shape = (self.n_tx, h, self.n_slots, self.bw)
            self.bands_f = torch.zeros(*shape, C, device=self.device)
            self.bands_l = torch.zeros(*shape, self.K, device=self.device)
            self._store(0, f0.permute(1, 2, 0), first_labels.float())
        self.t = 1  # index of the next target frame
        self._bias_cache: dict[tuple[int, ...], torch.Tensor] = {}

    def _slot(self, frame: int) -> int:
        return 0 if frame == 0 else 1 + (frame - 1) % self.context

    def _band_cols(self, tx: int) -> tuple[int, int, int]:
        """Image columns [xlo, xhi) held by band ``tx`` and the band column where xlo lands."""
        start = tx * self.tw - self.px  # image column of band column 0 (may be negative)
        xlo, xhi = max(0, start), min(self.w, start + self.bw)
        return xlo, xhi, xlo - start

    def _store(self, slot: int, feats_hwc: torch.Tensor, labels_hwk: torch.Tensor) -> None:
        for tx in range(self.n_tx):
            xlo, xhi, j = self._band_cols(tx)
            self.bands_f[tx, :, slot, j : j + xhi - xlo] = feats_hwc[:, xlo:xhi]
            self.bands_l[tx, :, slot, j : j + xhi - xlo] = labels_hwk[:, xlo:xhi]

    def _window_bias(self, tx: int, y0: int, qh: int, qw: int, ry0: int, rh: int) -> torch.Tensor:
        """(qh*qw, rh, 1, bw) additive mask: 0 where the key is strictly within the radius, else -inf."""
        xlo, xhi, j = self._band_cols(tx)
        key = (qh, qw, ry0 - y0, rh, j, xhi - xlo)
        bias = self._bias_cache.get(key)
        if bias is None:
            dev = self.device
            qy = torch.arange(qh, device=dev).view(qh, 1, 1, 1)
            qx = torch.arange(qw, device=dev).view(1, qw, 1, 1)
            ky = torch.arange(rh, device=dev).view(1, 1, rh, 1) + (ry0 - y0)
            kcol = torch.arange(self.bw, device=dev).view(1, 1, 1, self.bw)
            kx = kcol - self.px  # column offset relative to the tile's first column
            inside = ((ky - qy) ** 2 + (kx - qx) ** 2).float() < self.radius**2
            inside &= (kcol >= j) & (kcol < j + xhi - xlo)  # padding columns outside the image
            bias = torch.zeros(inside.shape, device=dev).masked_fill_(~inside, float("-inf"))
            bias = bias.view(qh * qw, rh, 1, self.bw)
            self._bias_cache[key] = bias
        return bias

    def _first_frame_topk(self, q_flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k similarities of every query against all of frame 0: two (hw, k) tensors."""
        vals, idx = [], []
        for c0 in range(0, q_flat.shape[0], self.query_chunk):
            v, i = torch.topk(matmul(q_flat[c0 : c0 + self.query_chunk], self.keys0), self.topk, dim=1)
            vals.append(v)
            idx.append(i)
        return torch.cat(vals), torch.cat(idx)

    @torch.no_grad()
    def step(self, features: torch.Tensor) -> torch.Tensor:
        """Propagate labels to the next frame.

        Args:
            features: (C, h, w) L2-normalised features of target frame ``self.t``.

        Returns:
            (h, w, K) soft labels of that frame (also kept as context for later frames).
        """
        if tuple(features.shape) != (self.C, self.h, self.w):
            raise ValueError(
                f"frame {self.t}: features of shape {tuple(features.shape)}, expected {(self.C, self.h, self.w)}"
            )
        t, h, w, K, k, C = self.t, self.h, self.w, self.K, self.topk, self.C
        q_all = features.to(self.device, torch.float32).permute(1, 2, 0).contiguous()  # (h, w, C)
        vals0, idx0 = self._first_frame_topk(q_all.view(h * w, C))
        vals0, idx0 = vals0.view(h, w, k), idx0.view(h, w, k)
        lab0 = self.labels0[idx0]  # (h, w, k, K)
        inv_t = 1.0 / self.temperature
        if not self.use_window:
            out = torch.bmm(F.softmax(vals0.view(-1, k) * inv_t, dim=1).unsqueeze(1), lab0.view(-1, k, K))
            self.t += 1
            return out.view(h, w, K)

        # Which slots hold this frame's context, and how often frame 0 repeats in it.
        ctx = context_frame_indices(t, self.context)
        mult = [0] * self.n_slots
        for f in ctx:
            mult[self._slot(f)] += 1
        slot_bias = torch.tensor([0.0 if c else float("-inf") for c in mult], device=self.device)
        slot_bias = slot_bias.view(1, 1, self.n_slots, 1)
        extra0 = mult[0] - 1  # additional copies of frame 0 beyond the first

        out = torch.empty(h, w, K, device=self.device)
        S, bw = self.n_slots, self.bw
        for tx in range(self.n_tx):
            x0 = tx * self.tw
            qw = min(self.tw, w - x0)
            for y0 in range(0, h, self.th):
                qh = min(self.th, h - y0)
                n = qh * qw
                ry0, ry1 = max(0, y0 - self.py), min(h, y0 + qh + self.py)
                rh = ry1 - ry0
                q = q_all[y0 : y0 + qh, x0 : x0 + qw].reshape(n, C)
                keys = self.bands_f[tx, ry0:ry1].view(rh * S * bw, C)  # contiguous view, no copy
                sim = matmul(q, keys.T).view(n, rh, S, bw)
                sim += self._window_bias(tx, y0, qh, qw, ry0, rh)
                sim += slot_bias
                labels = self.bands_l[tx, ry0:ry1].view(rh * S * bw, K)
                vw, iw = torch.topk(sim.view(n, -1), k, dim=1)
                cand_v = [vals0[y0 : y0 + qh, x0 : x0 + qw].reshape(n, k), vw]
                cand_l = [lab0[y0 : y0 + qh, x0 : x0 + qw].reshape(n, k, K), labels[iw]]
                if extra0 > 0:
                    # Frame 0 padded into the short-term context: its copies are distinct keys.
                    v0, i0 = torch.topk(sim[:, :, 0, :].reshape(n, rh * bw), k, dim=1)
                    rows, cols = i0 // bw, i0 % bw
                    l0 = labels.view(rh, S, bw, K)[rows, 0, cols]
                    cand_v += [v0] * extra0
                    cand_l += [l0] * extra0
                v, pos = torch.topk(torch.cat(cand_v, 1), k, dim=1)
                weights = F.softmax(v * inv_t, dim=1)  # (n, k)
                picked = torch.gather(torch.cat(cand_l, 1), 1, pos.unsqueeze(-1).expand(n, k, K))
                out[y0 : y0 + qh, x0 : x0 + qw] = torch.bmm(weights.unsqueeze(1), picked).view(qh, qw, K)
        self._store(self._slot(t), q_all, out)
        self.t += 1
        return out


def iter_propagate(
    features: Iterable[torch.Tensor],
    first_labels: torch.Tensor,
    *,
    topk: int,
    temperature: float,
    radius: float,
    context: int,
    tile: tuple[int, int] | None = None,
) -> Iterator[torch.Tensor]:
    """Stream propagation over an iterable of per-frame features.

    Args:
        features: iterable of (C, h, w) L2-normalised features, frame 0 first.
        first_labels: (h, w, K) soft labels of frame 0.

    Yields:
        (h, w, K) soft labels for every frame, starting with ``first_labels`` for frame 0.
    """
    it = iter(features)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("no frames to propagate") from None
    prop = Propagator(
        first, first_labels, topk=topk, temperature=temperature, radius=radius, context=context, tile=tile
    )
    yield first_labels.float().to(prop.device)
    for feats in it:
        yield prop.step(feats)


@torch.no_grad()
def propagate(
    features: torch.Tensor,
    first_labels: torch.Tensor,
    *,
    topk: int,
    temperature: float,
    radius: float,
    context: int,
    tile: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Propagate first-frame labels through a video (CRW/SFC protocol, windowed computation).

    Args:
        features: (T, C, h, w) L2-normalised features.
        first_labels: (h, w, K) soft one-hot labels of frame 0.
        topk: neighbours kept per query.
        temperature: softmax temperature.
        radius: strict spatial radius r' (feature cells) for the context frames.
        context: number m of preceding frames attended.
        tile: optional (th, tw) query tile (speed only).

    Returns:
        (T, h, w, K) soft labels on the device of ``features``; frame 0 equals ``first_labels``.
    """
    validate_inputs(features, first_labels, topk=topk, temperature=temperature, context=context)
    first_labels = first_labels.to(features.device)
    T, _, h, w = features.shape
    out = torch.empty(T, h, w, first_labels.shape[-1], device=features.device)
    for t, lab in enumerate(
        iter_propagate(
            features, first_labels, topk=topk, temperature=temperature, radius=radius, context=context, tile=tile
        )
    ):
        out[t] = lab
    return out
