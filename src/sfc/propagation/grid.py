"""A grid of late-fusion propagation configurations for about the price of one.

The fusion search (SFC Table A.2: lambda, top-k, r' tuned per benchmark) would naively propagate the
whole video once per configuration. Three identities make almost all of that work shareable:

1. **Fused similarities from the parts** (SFC eq. 7, :func:`sfc.fusion.fused_similarity`): with
   ``F = L2([L2(Fs), lambda L2(Ff)])`` the cosine similarity of two fused vectors is
   ``(S_s + lambda^2 S_f) / (1 + lambda^2)``. The semantic and fine similarities of every query with
   every key it may attend to (first frame, and the m context frames within the *largest* radius) are
   computed once per frame; each lambda then costs one fused multiply-add over them, not a GEMM.
2. **Top-k prefixes**: the k largest similarities are the first k of the ``k_max`` largest, sorted.
   One top-``k_max`` per (lambda, r', m) serves every top-k; the softmax is re-taken over the prefix.
3. **Radius masks**: keys within a smaller radius r' are a subset of the largest radius' window; a
   smaller r' is an additive -inf mask before the top-k.

What cannot be shared is the label recurrence: predictions feed later frames, so every configuration
keeps its own label history (a ring of m + 1 frames of soft labels, a few MiB) and runs its own
weighted sum over its candidates. Candidates (values, keys) do not depend on labels, which is what
makes the sharing exact: each configuration's output equals propagating the fused features
(:func:`sfc.fusion.late_fusion`) with :class:`~sfc.propagation.engine.Propagator` up to float
rounding (ties between equal similarities aside), which tests check.

Candidates are referenced by a flat index into the per-configuration label buffer
``(1 + M, h*w, K)``: slot 0 is frame 0 (also for the padded copies of frame 0 in the short-term
context, as in the official protocol), slot ``1 + (f - 1) % M`` holds frame ``f`` (M = largest m).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sfc.propagation.blas import matmul, matmul_batched, run_all, tile_parallelism
from sfc.propagation.engine import (
    DEFAULT_TILE_CPU,
    DEFAULT_TILE_CUDA,
    BandLayout,
    _validate_params,
    grouped_topk,
)


@dataclass(frozen=True)
class GridPoint:
    """One propagation configuration of a late-fusion grid.

    Attributes:
        lam: fusion weight lambda of the fine-grained part (SFC eq. 7; paper, DAVIS: 1.75).
        topk: neighbours kept per query (paper SFC, DAVIS: 15).
        radius: strict spatial radius r' of the context frames, in feature cells (paper: 15).
        temperature: softmax temperature (paper SFC: 0.1 in the official VOS script).
        context: number m of preceding frames attended (paper: 20).
    """

    lam: float
    topk: int
    radius: float
    temperature: float
    context: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain ``{lambda, topk, radius, temperature, context}`` (parameter names of the pipelines)."""
        return {
            "lambda": self.lam,
            "topk": self.topk,
            "radius": self.radius,
            "temperature": self.temperature,
            "context": self.context,
        }


def make_grid(
    lambdas: Sequence[float],
    topks: Sequence[int],
    radii: Sequence[float],
    temperatures: Sequence[float],
    contexts: Sequence[int],
) -> list[GridPoint]:
    """The Cartesian product of the value lists, in the order lambda, top-k, r', temperature, m.

    Duplicated values are dropped (first occurrence kept).

    Raises:
        ValueError: an empty list (naming it), or a value that cannot be a parameter (lambda < 0 or
            not finite, top-k < 1, temperature <= 0, m < 0, r' not finite).
    """
    lists = {"lambdas": lambdas, "topks": topks, "radii": radii, "temperatures": temperatures, "contexts": contexts}
    for name, values in lists.items():
        if values is None or len(values) == 0:
            raise ValueError(f"the fusion grid is empty: `{name}` has no values (give at least one)")
    lam_v = _unique([float(v) for v in lambdas])
    k_v = _unique([int(v) for v in topks])
    r_v = _unique([float(v) for v in radii])
    t_v = _unique([float(v) for v in temperatures])
    m_v = _unique([int(v) for v in contexts])
    for lam in lam_v:
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"fusion lambda must be a finite number >= 0, got {lam} in `lambdas`")
    for k in k_v:
        if k < 1:
            raise ValueError(f"top-k must be >= 1, got {k} in `topks`")
    for r in r_v:
        if not math.isfinite(r):
            raise ValueError(f"radius must be finite, got {r} in `radii`")
    for tau in t_v:
        if not tau > 0:
            raise ValueError(f"temperature must be > 0, got {tau} in `temperatures`")
    for m in m_v:
        if m < 0:
            raise ValueError(f"context must be >= 0, got {m} in `contexts`")
    return [GridPoint(*p) for p in itertools.product(lam_v, k_v, r_v, t_v, m_v)]


def _unique(values: list) -> list:
    return list(dict.fromkeys(values))


class FusionGridPropagator:
    """Propagate first-frame labels under many fusion configurations at once, frame by frame.

    Memory: as in :class:`~sfc.propagation.engine.Propagator`, a plain ring per backbone (for the
    largest m) and one tile column's band of each at a time (for the largest r'), one label ring per
    configuration, and per frame the shared top-``k_max`` candidates of every (lambda, r', m).

    Args:
        first_semantic: (Cs, h, w) L2-normalised semantic features of frame 0.
        first_fine: (Cf, h, w) L2-normalised fine-grained features of frame 0 (same grid).
        first_labels: (h, w, K) soft one-hot labels of frame 0.
        points: the configurations (see :func:`make_grid`).
        tile: (th, tw) query tile, a speed/memory knob only.

    Raises:
        ValueError: feature maps of different spatial sizes, labels not on that grid, no
            configurations, or a configuration the engine would refuse (top-k above h*w ...).
    """

    def __init__(
        self,
        first_semantic: torch.Tensor,
        first_fine: torch.Tensor,
        first_labels: torch.Tensor,
        points: Sequence[GridPoint],
        *,
        tile: tuple[int, int] | None = None,
    ) -> None:
        if first_semantic.dim() != 3 or first_fine.dim() != 3:
            raise ValueError(
                f"frame 0: features must be (C, h, w); got semantic {tuple(first_semantic.shape)}, "
                f"fine {tuple(first_fine.shape)}"
            )
        if first_semantic.shape[-2:] != first_fine.shape[-2:]:
            raise ValueError(
                "cannot fuse feature maps of different spatial sizes: semantic (C, h, w) = "
                f"{tuple(first_semantic.shape)} vs fine {tuple(first_fine.shape)} (different strides or "
                "input scales; resample the semantic map onto the fine grid first, see sfc.fusion.resize_to)"
            )
        Cs, h, w = first_semantic.shape
        Cf = first_fine.shape[0]
        if first_labels.dim() != 3 or tuple(first_labels.shape[:2]) != (h, w):
            raise ValueError(f"first_labels must be (h, w, K) with (h, w) = {(h, w)}; got {tuple(first_labels.shape)}")
        self.points = list(points)
        if not self.points:
            raise ValueError("the fusion grid is empty: no configuration to propagate")
        for p in self.points:
            _validate_params(topk=p.topk, temperature=p.temperature, context=p.context, hw=h * w)
            if not math.isfinite(p.lam) or p.lam < 0:
                raise ValueError(f"fusion lambda must be a finite number >= 0, got {p.lam}")
        self.device = first_fine.device
        self.Cs, self.Cf, self.h, self.w = Cs, Cf, h, w
        self.K = first_labels.shape[-1]
        self.kmax = max(p.topk for p in self.points)
        self.M = max(p.context for p in self.points)
        self.lambdas = _unique([p.lam for p in self.points])
        self.radii = _unique([p.radius for p in self.points])
        self.contexts = _unique([p.context for p in self.points])
        # (lambda, r', m) groups share their candidates; a point is a group + (top-k, temperature).
        self.groups = list(itertools.product(range(len(self.lambdas)), range(len(self.radii)), range(len(self.contexts))))
        gid = {g: i for i, g in enumerate(self.groups)}
        self.point_group = [
            gid[(self.lambdas.index(p.lam), self.radii.index(p.radius), self.contexts.index(p.context))]
            for p in self.points
        ]
        if tile is None:
            tile = DEFAULT_TILE_CUDA if self.device.type == "cuda" else DEFAULT_TILE_CPU
        self.layout = lay = BandLayout(h, w, tile, max(self.radii))
        self.use_window = self.M > 0 and lay.reach >= 0
        hw = h * w

        s0 = first_semantic.to(self.device, torch.float32)
        f0 = first_fine.to(self.device, torch.float32)
        self.keys0_s = s0.reshape(Cs, hw).clone()
        self.keys0_f = f0.reshape(Cf, hw).clone()
        labels0 = first_labels.to(self.device, torch.float32).reshape(hw, self.K)
        # Per configuration: slot 0 = frame 0, slot 1 + (f - 1) % M = frame f.
        self.labels = torch.zeros(len(self.points), 1 + self.M, hw, self.K, device=self.device)
        self.labels[:, 0] = labels0
        if self.use_window:
            # Plain rings (frame f >= 1 in slot (f - 1) % M) and one tile column's band at a time, as
            # in the engine; frame 0 as (h, w, C) while padded copies of it are in some context.
            bw = lay.bw
            self.ring_s = torch.zeros(self.M, h, w, Cs, device=self.device)
            self.ring_f = torch.zeros(self.M, h, w, Cf, device=self.device)
            self.band_s = torch.zeros(self.M, h, bw, Cs, device=self.device)
            self.band_f = torch.zeros(self.M, h, bw, Cf, device=self.device)
            self.band0_s = torch.zeros(h, bw, Cs, device=self.device)
            self.band0_f = torch.zeros(h, bw, Cf, device=self.device)
            self.plain0: tuple[torch.Tensor, torch.Tensor] | None = (
                s0.permute(1, 2, 0).contiguous(), f0.permute(1, 2, 0).contiguous()
            )
            # Flat image index of every band location (clamped on padding columns, which are masked).
            cols = torch.arange(lay.bw, device=self.device)
            self._band_x = [
                (tx * lay.tw - lay.px + cols).clamp(0, w - 1) for tx in range(lay.n_tx)
            ]
        self.t = 1
        self._vals = torch.empty(len(self.groups), h, w, self.kmax, device=self.device)
        self._idx = torch.empty(len(self.groups), h, w, self.kmax, dtype=torch.long, device=self.device)

    def _ring_slots(self, m: int) -> tuple[list[int], int]:
        """Ring slots of the context frames >= 1 of target ``self.t`` for context ``m``, and the
        number of padded copies of frame 0 in that context."""
        t = self.t
        frames = range(max(1, t - m), t)
        return [(f - 1) % self.M for f in frames], max(0, m - t + 1)

    def _fill_band(self, tx: int, n_ring: int, any_zero: bool, rows: tuple[int, int]) -> None:
        """Copy image rows ``rows`` of tile column ``tx``'s band of both rings (and of frame 0)."""
        pairs = [(self.band_s[:n_ring], self.ring_s[:n_ring]), (self.band_f[:n_ring], self.ring_f[:n_ring])]
        if any_zero:
            assert self.plain0 is not None
            pairs += [(self.band0_s, self.plain0[0]), (self.band0_f, self.plain0[1])]
        self.layout.copy_band(tx, pairs, rows)

    def _tile(self, tx: int, y0: int, qs_all: torch.Tensor, qf_all: torch.Tensor, n_ring: int, any_zero: bool) -> None:
        lay, h, w, kmax = self.layout, self.h, self.w, self.kmax
        hw = h * w
        x0 = tx * lay.tw
        qh, qw = min(lay.th, h - y0), min(lay.tw, w - x0)
        n = qh * qw
        qs = qs_all[y0 : y0 + qh, x0 : x0 + qw].reshape(n, self.Cs)
        qf = qf_all[y0 : y0 + qh, x0 : x0 + qw].reshape(n, self.Cf)
        first_s = matmul(qs, self.keys0_s)  # (n, hw)
        first_f = matmul(qf, self.keys0_f)
        if self.use_window:
            ry0, ry1 = lay.row_window(y0, qh)
            rh = ry1 - ry0
            nk = rh * lay.bw
            ys = torch.arange(ry0, ry1, device=self.device).view(rh, 1)
            loc_flat = (ys * w + self._band_x[tx].view(1, -1)).reshape(nk)  # band loc -> image index
            biases = {
                r: lay.window_bias(tx, y0, qh, qw, ry0, rh, r, self.device).view(n, nk) for r in self.radii if r > 0
            }
            if n_ring > 0:
                sims_s = matmul_batched(qs, self.band_s[:n_ring, ry0:ry1].reshape(n_ring, nk, self.Cs))
                sims_f = matmul_batched(qf, self.band_f[:n_ring, ry0:ry1].reshape(n_ring, nk, self.Cf))
            if any_zero:
                zero_s = matmul(qs, self.band0_s[ry0:ry1].view(nk, self.Cs).T)  # (n, nk)
                zero_f = matmul(qf, self.band0_f[ry0:ry1].view(nk, self.Cf).T)
        rows = torch.arange(n, device=self.device).view(n, 1)
        for li, lam in enumerate(self.lambdas):
            a = lam * lam
            inv = 1.0 / (1.0 + a)
            # Candidates from all of frame 0 (no radius): shared by every r' and m.
            v0, r0, c0 = grouped_topk(torch.add(first_s, first_f, alpha=a).view(n, h, w), kmax)
            i0 = r0 * w + c0
            if self.use_window and n_ring > 0:
                comb = torch.add(sims_s, sims_f, alpha=a)  # (n_ring, n, nk), fused up to 1 / (1 + a)
            if self.use_window and any_zero:
                zcomb = torch.add(zero_s, zero_f, alpha=a)
            for mi, m in enumerate(self.contexts):
                slots, n_zero = self._ring_slots(m)
                ring = None
                if self.use_window and m > 0 and slots:
                    if len(slots) == n_ring:  # every filled ring slot is in this context: no copy
                        ring, slot_t = comb, torch.arange(n_ring, device=self.device)
                    else:
                        slot_t = torch.tensor(slots, device=self.device)
                        ring = comb[slot_t]
                    ring_max = ring.amax(dim=0)  # (n, nk)
                for ri, r in enumerate(self.radii):
                    cand_v, cand_i = [v0], [i0]
                    if self.use_window and m > 0 and r > 0:
                        bias = biases[r]
                        if ring is not None:
                            kg = min(kmax, nk)
                            _, gi = torch.topk(ring_max + bias, kg, dim=1)  # (n, kg) best key locations
                            sub = ring[:, rows, gi] + bias.gather(1, gi)  # (n_slots, n, kg)
                            ns = sub.shape[0]
                            sub = sub.permute(1, 0, 2).reshape(n, ns * kg)
                            v, j = torch.topk(sub, min(kmax, ns * kg), dim=1)
                            slot = slot_t[torch.div(j, kg, rounding_mode="floor")]
                            loc = gi.gather(1, j % kg)
                            cand_v.append(v)
                            cand_i.append((1 + slot) * hw + loc_flat[loc])
                        if n_zero > 0:
                            v, i = torch.topk(zcomb + bias, min(kmax, nk), dim=1)
                            cand_v += [v] * n_zero  # each padded copy of frame 0 is a separate key
                            cand_i += [loc_flat[i]] * n_zero
                    v, pos = torch.topk(torch.cat(cand_v, 1), kmax, dim=1)
                    idx = torch.gather(torch.cat(cand_i, 1), 1, pos)
                    g = self._gindex(li, ri, mi)
                    self._vals[g, y0 : y0 + qh, x0 : x0 + qw] = (v * inv).view(qh, qw, kmax)
                    self._idx[g, y0 : y0 + qh, x0 : x0 + qw] = idx.view(qh, qw, kmax)

    def _gindex(self, li: int, ri: int, mi: int) -> int:
        """Index of group (lambda, r', m) in ``self.groups`` (itertools.product order)."""
        return (li * len(self.radii) + ri) * len(self.contexts) + mi

    def _labels_of(self, p: int) -> torch.Tensor:
        """Soft labels (h*w, K) of configuration ``p`` for the current frame from the shared candidates."""
        pt, g = self.points[p], self.point_group[p]
        hw = self.h * self.w
        vals = self._vals[g].view(hw, self.kmax)[:, : pt.topk]
        idx = self._idx[g].view(hw, self.kmax)[:, : pt.topk]
        weights = F.softmax(vals * (1.0 / pt.temperature), dim=1)
        picked = self.labels[p].view(-1, self.K)[idx]  # (hw, k, K)
        return torch.bmm(weights.unsqueeze(1), picked).view(hw, self.K)

    @torch.no_grad()
    def step(self, semantic: torch.Tensor, fine: torch.Tensor) -> list[torch.Tensor]:
        """Propagate every configuration to the next frame.

        Args:
            semantic: (Cs, h, w) L2-normalised semantic features of frame ``self.t``.
            fine: (Cf, h, w) L2-normalised fine-grained features of the same frame.

        Returns:
            one (h, w, K) soft label map per configuration, in the order of ``points``.
        """
        for name, x, c in (("semantic", semantic, self.Cs), ("fine", fine, self.Cf)):
            if tuple(x.shape) != (c, self.h, self.w):
                raise ValueError(
                    f"frame {self.t}: {name} features of shape {tuple(x.shape)}, expected {(c, self.h, self.w)}"
                )
        t, M = self.t, self.M
        qs_all = semantic.to(self.device, torch.float32).permute(1, 2, 0).contiguous()  # (h, w, Cs)
        qf_all = fine.to(self.device, torch.float32).permute(1, 2, 0).contiguous()
        n_ring = min(M, t - 1) if self.use_window else 0
        any_zero = self.use_window and M - t + 1 > 0
        lay = self.layout
        n_threads = torch.get_num_threads()
        with tile_parallelism(self.device) as pool:
            parts = 1 if pool is None else n_threads
            row_parts = [(self.h * i // parts, self.h * (i + 1) // parts) for i in range(parts)]
            for tx in range(lay.n_tx):
                if self.use_window:  # this tile column's band of the slots in use (and of frame 0)
                    run_all(pool, self._fill_band, [(tx, n_ring, any_zero, rows) for rows in row_parts])
                column = [(tx, y0, qs_all, qf_all, n_ring, any_zero) for y0 in lay.column_rows()]
                run_all(pool, self._tile, column)
            if pool is None:
                outs = [self._labels_of(p) for p in range(len(self.points))]
            else:
                outs = list(pool.map(self._labels_of, range(len(self.points))))
        if M > 0:
            slot = 1 + (t - 1) % M
            for p, out in enumerate(outs):
                self.labels[p, slot] = out
        if self.use_window:
            self.ring_s[(t - 1) % M] = qs_all
            self.ring_f[(t - 1) % M] = qf_all
            if M - t + 1 <= 1:
                self.plain0 = None  # frame 0 has left every short-term context
        self.t += 1
        return [o.view(self.h, self.w, self.K) for o in outs]


def iter_grid_propagate(
    frames: Iterable[tuple[torch.Tensor, torch.Tensor]],
    first_labels: torch.Tensor,
    points: Sequence[GridPoint],
    *,
    tile: tuple[int, int] | None = None,
) -> Iterator[list[torch.Tensor]]:
    """Stream a fusion grid over per-frame feature pairs.

    Args:
        frames: iterable of ``(semantic (Cs, h, w), fine (Cf, h, w))`` L2-normalised features, frame 0
            first (e.g. ``zip(semantic, fine, strict=True)``).
        first_labels: (h, w, K) soft labels of frame 0.
        points: the configurations.
        tile: query tile (speed only).

    Yields:
        for every frame, one (h, w, K) soft label map per configuration (frame 0: ``first_labels``).
    """
    it = iter(frames)
    try:
        s0, f0 = next(it)
    except StopIteration:
        raise ValueError("no frames to propagate") from None
    prop = FusionGridPropagator(s0, f0, first_labels, points, tile=tile)
    first = first_labels.float().to(prop.device)
    yield [first] * len(prop.points)
    for s, f in it:
        yield prop.step(s, f)
