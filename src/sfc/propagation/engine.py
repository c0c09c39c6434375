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

Instead of the official (h*w) x ((1+m)*h*w) affinity per frame, every query is scored against all
of frame 0 in large chunks, and against the m context frames in small spatial tiles: a tile of
``th x tw`` queries meets only the (th + 2r) x (tw + 2r) key window of each context frame, masked to
the radius. Context features live in a ring of m frames, so memory does not grow with video length,
and everything runs on the device of the input features (CUDA when available).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from sfc.propagation.blas import matmul, matmul_batched_rows, run_all, tile_parallelism

DEFAULT_TILE_CPU = (8, 8)
DEFAULT_TILE_CUDA = (16, 32)
#: Queries scored against all of frame 0 per GEMM: large enough for BLAS to run near its peak (CPU),
#: or to fill the GPU; a (chunk, h * w) float32 buffer per worker thread.
DEFAULT_QUERY_CHUNK_CPU = 512
DEFAULT_QUERY_CHUNK_CUDA = 8192


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


def grouped_topk(
    x: torch.Tensor, k: int, group_bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact top-k over all elements of ``x`` viewed as groups along dim 1.

    The k-th largest group maximum is a lower bound of the k-th largest element, so the top-k elements
    all lie in the k groups with the largest maxima (ties at that bound aside, whose order is
    implementation-defined in any top-k). Cost: one vectorised max over dim 1 plus two small top-k's,
    instead of a top-k over every element.

    Args:
        x: (n, g, G) scores; a group is one index along the last dim (its g members are strided).
        k: number of elements wanted per row.
        group_bias: optional (n, G) additive bias per group (-inf excludes a group).

    Returns:
        values (n, k'), member index in [0, g) (n, k'), group index in [0, G) (n, k'),
        with k' = min(k, min(k, G) * g).
    """
    n, g, G = x.shape
    gmax = x.amax(dim=1)
    if group_bias is not None:
        gmax = gmax + group_bias
    kg = min(k, G)
    _, gi = torch.topk(gmax, kg, dim=1)  # (n, kg) best groups
    sub = torch.gather(x, 2, gi.unsqueeze(1).expand(n, g, kg))  # (n, g, kg)
    if group_bias is not None:
        sub = sub + torch.gather(group_bias, 1, gi).unsqueeze(1)
    vals, j = torch.topk(sub.reshape(n, g * kg), min(k, g * kg), dim=1)
    member = torch.div(j, kg, rounding_mode="floor")
    group = torch.gather(gi, 1, j % kg)
    return vals, member, group


class BandLayout:
    """Geometry of the column bands the query tiles read context frames through (see :class:`Propagator`).

    Query tiles of ``th x tw`` cells; band ``tx`` holds image columns ``[tx*tw - px, tx*tw + tw + px)``
    (clipped to the image; band columns outside it are masked out) of every row, so the key window
    of any tile in that column is a contiguous block of rows.

    Args:
        h, w: feature grid.
        tile: (th, tw) query tile (clipped to the grid).
        radius: the largest strict radius r' the bands must serve (<= 0: no window at all).
    """

    def __init__(self, h: int, w: int, tile: tuple[int, int], radius: float) -> None:
        self.h, self.w = h, w
        self.th, self.tw = min(tile[0], h), min(tile[1], w)
        # Largest integer offset strictly inside the radius (none if radius <= 0: no short-term keys).
        self.reach = math.ceil(radius) - 1 if radius > 0 else -1
        self.py, self.px = max(0, min(self.reach, h - 1)), max(0, min(self.reach, w - 1))
        self.n_tx = math.ceil(w / self.tw)
        self.bw = self.tw + 2 * self.px  # band width (columns) per tile column
        self._bias_cache: dict[tuple[float | int, ...], torch.Tensor] = {}

    def tiles(self) -> list[tuple[int, int]]:
        """(band/tile column ``tx``, first row ``y0``) of every query tile, one tile column after another."""
        return [(tx, y0) for tx in range(self.n_tx) for y0 in self.column_rows()]

    def column_rows(self) -> range:
        """First row ``y0`` of each query tile in a tile column."""
        return range(0, self.h, self.th)

    def band_cols(self, tx: int) -> tuple[int, int, int]:
        """Image columns [xlo, xhi) held by band ``tx`` and the band column where xlo lands."""
        start = tx * self.tw - self.px  # image column of band column 0 (may be negative)
        xlo, xhi = max(0, start), min(self.w, start + self.bw)
        return xlo, xhi, xlo - start

    def copy_band(
        self, tx: int, pairs: list[tuple[torch.Tensor, torch.Tensor]], rows: tuple[int, int] | None = None
    ) -> None:
        """Copy tile column ``tx``'s band out of plain frames: ``dst[..., y, col] = src[..., y, x]``.

        ``dst`` is (..., h, bw, C'), ``src`` (..., h, w, C') (the same leading dims, e.g. ring slots).
        ``rows``: only image rows [r0, r1) (lets threads share a copy). Band columns outside the image
        are not written: they keep earlier (finite) values, which :meth:`window_bias` masks out.
        """
        xlo, xhi, j = self.band_cols(tx)
        r0, r1 = rows if rows is not None else (0, self.h)
        for dst, src in pairs:
            dst[..., r0:r1, j : j + xhi - xlo, :] = src[..., r0:r1, xlo:xhi, :]

    def row_window(self, y0: int, qh: int) -> tuple[int, int]:
        """Rows [ry0, ry1) of the key window of a tile starting at row ``y0`` with ``qh`` rows."""
        return max(0, y0 - self.py), min(self.h, y0 + qh + self.py)

    def window_bias(
        self, tx: int, y0: int, qh: int, qw: int, ry0: int, rh: int, radius: float, device: torch.device
    ) -> torch.Tensor:
        """(qh*qw, rh, bw) additive mask: 0 where the key is strictly within ``radius``, else -inf."""
        xlo, xhi, j = self.band_cols(tx)
        key = (qh, qw, ry0 - y0, rh, j, xhi - xlo, float(radius))
        bias = self._bias_cache.get(key)
        if bias is None:
            qy = torch.arange(qh, device=device).view(qh, 1, 1, 1)
            qx = torch.arange(qw, device=device).view(1, qw, 1, 1)
            ky = torch.arange(rh, device=device).view(1, 1, rh, 1) + (ry0 - y0)
            kcol = torch.arange(self.bw, device=device).view(1, 1, 1, self.bw)
            kx = kcol - self.px  # column offset relative to the tile's first column
            inside = ((ky - qy) ** 2 + (kx - qx) ** 2).float() < float(radius) ** 2
            inside &= (kcol >= j) & (kcol < j + xhi - xlo)  # padding columns outside the image
            bias = torch.zeros(inside.shape, device=device).masked_fill_(~inside, float("-inf"))
            bias = bias.view(qh * qw, rh, self.bw)
            self._bias_cache[key] = bias
        return bias


class PhaseTimes:
    """Thread-seconds and FLOPs spent per phase of :meth:`Propagator.step` (for benchmarks).

    Phases: ``first-frame GEMM`` (every query with all of frame 0), ``first-frame top-k``,
    ``band copy`` (one column band of the context ring per tile column), ``context GEMM`` (the tiles'
    products with their key windows), ``select`` (masks, top-k's, softmax and weighted sum of
    labels). Seconds are summed over worker threads, so ``flops / seconds`` is a per-core rate.
    """

    PHASES = ("first-frame GEMM", "first-frame top-k", "band copy", "context GEMM", "select")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.flops = dict.fromkeys(self.PHASES, 0.0)
        self._lock = threading.Lock()

    def add(self, phase: str, seconds: float, flops: float = 0.0) -> None:
        with self._lock:
            self.seconds[phase] += seconds
            self.flops[phase] += flops


class Propagator:
    """Streaming propagation state: feed target frames one at a time with :meth:`step`.

    Work per target frame (why it is fast):

    * **Frame 0, all queries at once.** Every query is scored against all of frame 0 in chunks of
      ``query_chunk`` queries (large GEMMs run near the BLAS peak), and only its top-k is kept
      (:func:`grouped_topk`, exact).
    * **Context frames, per query tile.** A tile of ``th x tw`` queries is scored against its key
      window (its rows +- r', the column band around it) in each of the m context frames: one batched
      GEMM with the keys as rows, the radius as an additive -inf mask, then an exact grouped top-k
      (groups = key locations, members = context frames: the max over frames is a cheap reduction).
    * **Memory.** The m most recent frames live in a plain ring ``(m, h, w, C)``: memory does not
      grow with video length and is ~1x the features of m frames. Tiles are processed one tile column
      at a time; before a column, its overlapping column band ``(m, h, tw + 2 r', C)`` is copied from
      the ring into one scratch buffer, where every tile's window in every frame is one contiguous
      block at a fixed frame stride (copy-free GEMM operands).

    While ``t <= m`` the official padding puts ``m - t + 1`` copies of frame 0 in the short-term
    context; they are distinct keys, handled exactly by repeating frame 0's own windowed top-k.

    Args:
        first_features: (C, h, w) L2-normalised features of frame 0.
        first_labels: (h, w, K) soft one-hot labels of frame 0.
        topk: neighbours kept per query (paper: 10 FC-only, 15 SFC on DAVIS).
        temperature: softmax temperature (paper: 0.05 FC-only, 0.1 SFC).
        radius: strict radius r' in feature cells for the context frames (paper: 12 / 15).
        context: number m of preceding frames attended (paper: 20).
        tile: (th, tw) query tile; a speed/memory knob only (results do not depend on it).
        query_chunk: queries scored at once against frame 0 (memory knob; default per device).
        timings: accumulate per-phase thread-seconds and FLOPs in :attr:`times` (benchmarks).
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
        query_chunk: int | None = None,
        timings: bool = False,
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
        if query_chunk is None:
            query_chunk = DEFAULT_QUERY_CHUNK_CUDA if self.device.type == "cuda" else DEFAULT_QUERY_CHUNK_CPU
        if query_chunk < 1:
            raise ValueError(f"query_chunk must be >= 1, got {query_chunk}")
        self.C, self.h, self.w = C, h, w
        self.K = first_labels.shape[-1]
        self.topk, self.temperature, self.radius, self.context = topk, float(temperature), float(radius), context
        self.query_chunk = query_chunk
        self.times: PhaseTimes | None = PhaseTimes() if timings else None
        if tile is None:
            tile = DEFAULT_TILE_CUDA if self.device.type == "cuda" else DEFAULT_TILE_CPU
        self.layout = lay = BandLayout(h, w, tile, self.radius)
        self.th, self.tw, self.bw = lay.th, lay.tw, lay.bw
        self.use_window = context > 0 and lay.reach >= 0

        # Frame 0 as (h*w, C) rows: its keys (a copy, never a view of a whole video) and its labels.
        self.keys0 = first_features.to(torch.float32).permute(1, 2, 0).reshape(h * w, C).contiguous()
        self.labels0 = first_labels.to(self.device, torch.float32).reshape(h * w, self.K).contiguous()
        if self.use_window:
            # Frame f >= 1 lives in ring slot (f - 1) % m. The band holds one tile column's band of
            # the slots in use, plus frame 0 after them while padded copies of it are in the context.
            self.ring_f = torch.zeros(context, h, w, C, device=self.device)
            self.ring_l = torch.zeros(context, h, w, self.K, device=self.device)
            self.band_f = torch.zeros(context, h, self.bw, C, device=self.device)
            self.band_l = torch.zeros(context, h, self.bw, self.K, device=self.device)
        self._bias_t: dict[tuple[int, int], torch.Tensor] = {}
        self._local = threading.local()
        self.t = 1  # index of the next target frame

    # ------------------------------------------------------------------------------- helpers
    def _timed(self, phase: str, t0: float, flops: float = 0.0) -> float:
        t1 = time.perf_counter()
        if self.times is not None:
            self.times.add(phase, t1 - t0, flops)
        return t1

    def _buffer(self, name: str, numel: int) -> torch.Tensor:
        """A per-thread scratch buffer of ``numel`` floats, reused across calls (GEMM outputs)."""
        buf = getattr(self._local, name, None)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, device=self.device)
            setattr(self._local, name, buf)
        return buf[:numel]

    def _first_frame_chunk(self, a: int, b: int, q_flat: torch.Tensor, v0: torch.Tensor, i0: torch.Tensor) -> None:
        """Top-k of queries ``a:b`` against all of frame 0, into rows ``a:b`` of ``v0``/``i0``."""
        t0 = time.perf_counter()
        n, hw = b - a, self.h * self.w
        sim = matmul(q_flat[a:b], self.keys0.T, out=self._buffer("first", n * hw).view(n, hw))
        t0 = self._timed("first-frame GEMM", t0, 2.0 * n * hw * self.C)
        vals, row, col = grouped_topk(sim.view(n, self.h, self.w), self.topk)  # groups = columns
        v0[a:b] = vals
        i0[a:b] = row * self.w + col
        self._timed("first-frame top-k", t0)

    def _fill_band(self, tx: int, n_ring: int, n_zero: int, r0: int, r1: int) -> None:
        """Copy rows ``r0:r1`` of tile column ``tx``'s band of the ring slots in use (and of frame 0)
        into the scratch band (row ranges let the worker threads share the copy)."""
        t0 = time.perf_counter()
        pairs = [(self.band_f[:n_ring], self.ring_f[:n_ring]), (self.band_l[:n_ring], self.ring_l[:n_ring])]
        if n_zero > 0:
            h, w = self.h, self.w
            pairs += [
                (self.band_f[n_ring], self.keys0.view(h, w, self.C)),
                (self.band_l[n_ring], self.labels0.view(h, w, self.K)),
            ]
        self.layout.copy_band(tx, pairs, (r0, r1))
        self._timed("band copy", t0)

    def _window_bias_t(self, tx: int, y0: int, qh: int, qw: int, ry0: int, rh: int) -> torch.Tensor:
        """(rh * bw, qh * qw) additive radius mask, keys as rows (cached per tile)."""
        bias = self._bias_t.get((tx, y0))
        if bias is None:
            n = qh * qw
            bias = self.layout.window_bias(tx, y0, qh, qw, ry0, rh, self.radius, self.device)
            bias = bias.view(n, rh * self.bw).T.contiguous()
            self._bias_t[(tx, y0)] = bias
        return bias

    def _tile(
        self,
        tx: int,
        y0: int,
        q_all: torch.Tensor,
        v0: torch.Tensor,
        i0: torch.Tensor,
        out: torch.Tensor,
        n_ring: int,
        n_zero: int,
    ) -> None:
        """Propagate to one query tile; writes its (qh, qw, K) block of ``out``."""
        t0 = time.perf_counter()
        h, w, K, k, C, bw = self.h, self.w, self.K, self.topk, self.C, self.bw
        x0 = tx * self.tw
        qh, qw = min(self.th, h - y0), min(self.tw, w - x0)
        n = qh * qw
        q = q_all[y0 : y0 + qh, x0 : x0 + qw].reshape(n, C)
        first = (v0[y0 : y0 + qh, x0 : x0 + qw].reshape(n, k), i0[y0 : y0 + qh, x0 : x0 + qw].reshape(n, k))
        cand_v, cand_l = [first[0]], [self.labels0[first[1]]]
        if self.use_window:
            ry0, ry1 = self.layout.row_window(y0, qh)
            rh = ry1 - ry0
            R = rh * bw
            bias = self._window_bias_t(tx, y0, qh, qw, ry0, rh)  # (R, n)
            S = n_ring + (1 if n_zero > 0 else 0)
            # (S, R, C): one contiguous block per slot, slots at a fixed stride: no copy.
            keys = self.band_f[:S, ry0:ry1].reshape(S, R, C)
            sim = matmul_batched_rows(keys, q, out=self._buffer("ctx", S * R * n).view(S, R, n))
            t0 = self._timed("context GEMM", t0, 2.0 * S * R * n * C)
            cols = torch.arange(n, device=self.device)
            if n_ring > 0:
                # Groups = key locations, members = context frames: the max over frames is a cheap
                # reduction over the outer dim, and the radius mask is a per-group bias.
                ring = sim[:n_ring]
                gmax = torch.amax(ring, dim=0).add_(bias)  # (R, n)
                kg = min(k, R)
                _, gi = torch.topk(gmax, kg, dim=0)  # (kg, n) best key locations per query
                sub = ring[:, gi, cols] + bias[gi, cols]  # (n_ring, kg, n)
                sub = sub.permute(2, 0, 1).reshape(n, n_ring * kg)  # slot-major candidates per query
                v, j = torch.topk(sub, min(k, n_ring * kg), dim=1)
                slot = torch.div(j, kg, rounding_mode="floor")
                loc = gi.T.gather(1, j % kg)
                labels = self.band_l[:n_ring, ry0:ry1].reshape(n_ring, R, K)
                cand_v.append(v)
                cand_l.append(labels[slot, loc])
            if n_zero > 0:
                s0 = sim[n_ring] + bias  # (R, n)
                v, i = torch.topk(s0, min(k, R), dim=0)
                lab = self.band_l[n_ring, ry0:ry1].reshape(R, K)[i.T]
                cand_v += [v.T] * n_zero  # each padded copy of frame 0 is a separate key
                cand_l += [lab] * n_zero
        v, pos = torch.topk(torch.cat(cand_v, 1), k, dim=1)
        weights = F.softmax(v * (1.0 / self.temperature), dim=1)  # (n, k)
        picked = torch.gather(torch.cat(cand_l, 1), 1, pos.unsqueeze(-1).expand(n, k, K))
        out[y0 : y0 + qh, x0 : x0 + qw] = torch.bmm(weights.unsqueeze(1), picked).view(qh, qw, K)
        self._timed("select", t0)

    # --------------------------------------------------------------------------------- API
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
        t, m, h, w = self.t, self.context, self.h, self.w
        q_all = features.to(self.device, torch.float32).permute(1, 2, 0).contiguous()  # (h, w, C)
        n_zero = max(0, m - t + 1) if self.use_window else 0  # padded copies of frame 0 in the context
        n_ring = m - n_zero if self.use_window else 0  # frames >= 1 in the ring (slots 0..n_ring-1)
        out = torch.empty(h, w, self.K, device=self.device)
        v0 = torch.empty(h, w, self.topk, device=self.device)
        i0 = torch.empty(h, w, self.topk, dtype=torch.long, device=self.device)
        q_flat, hw = q_all.view(h * w, self.C), h * w
        chunks = [(a, min(hw, a + self.query_chunk)) for a in range(0, hw, self.query_chunk)]
        v0f, i0f = v0.view(hw, self.topk), i0.view(hw, self.topk)
        lay = self.layout
        n_threads = torch.get_num_threads()
        with tile_parallelism(self.device) as pool:
            parts = 1 if pool is None else n_threads
            row_parts = [(h * i // parts, h * (i + 1) // parts) for i in range(parts)]
            run_all(pool, self._first_frame_chunk, [(a, b, q_flat, v0f, i0f) for a, b in chunks])
            for tx in range(lay.n_tx):
                if self.use_window:
                    run_all(pool, self._fill_band, [(tx, n_ring, n_zero, r0, r1) for r0, r1 in row_parts])
                column = [(tx, y0, q_all, v0, i0, out, n_ring, n_zero) for y0 in lay.column_rows()]
                run_all(pool, self._tile, column)
        if self.use_window:
            slot = (t - 1) % m
            self.ring_f[slot] = q_all
            self.ring_l[slot] = out
        self.t += 1
        return out

    def restore(self, frames: Iterable[tuple[int, torch.Tensor, torch.Tensor]], next_t: int) -> None:
        """Put a fresh propagator in the state its own steps up to frame ``next_t - 1`` would have left.

        Lets an interrupted propagation resume exactly from saved soft labels (``sfc propagate``):
        frame ``f >= 1`` is stored in ring slot ``(f - 1) % m`` as (its features, its soft labels), as
        :meth:`step` stores it.

        Args:
            frames: ``(t, (C, h, w) L2-normalised features, (h, w, K) soft labels)`` of frames
                ``max(1, next_t - m) .. next_t - 1``.
            next_t: the next frame to propagate (>= 1).

        Raises:
            RuntimeError: the propagator has stepped already.
        """
        if self.t != 1:
            raise RuntimeError(f"restore needs a propagator that has not stepped (it is at frame {self.t})")
        m = self.context
        if self.use_window:
            for t, feats, soft in frames:
                slot = (t - 1) % m
                self.ring_f[slot] = feats.to(self.device, torch.float32).permute(1, 2, 0)
                self.ring_l[slot] = soft.to(self.device, torch.float32)
        self.t = next_t


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
