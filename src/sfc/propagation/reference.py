"""Straightforward full-affinity label propagation (the CRW/SFC protocol, written for comparison).

This is the obvious implementation of the protocol: for every target frame it scores each query
location against *every* location of the first frame and of the ``context`` preceding frames, masks
the short-term part outside the spatial radius, keeps the top-k, applies a softmax with temperature
and takes the weighted sum of the neighbours' soft labels. It is kept (a) as the executable
specification the fast engine in :mod:`sfc.propagation.engine` is tested against, and (b) as the
baseline of ``benchmarks/propagation.py``. Queries are processed in chunks so that memory stays at
``chunk x (1 + context) x h x w`` similarities, like the official ``mem_efficient_batched_affinity``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sfc.propagation.engine import context_frame_indices, validate_inputs


def radius_mask(h: int, w: int, radius: float, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (h*w, h*w) mask: True where two locations lie strictly closer than ``radius`` cells.

    Distances are Euclidean on the feature grid, as in CRW's ``MaskedAttention`` (``D < radius``).
    """
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()
    dist = torch.cdist(pos, pos)
    return dist < radius


@torch.no_grad()
def propagate_full(
    features: torch.Tensor,
    first_labels: torch.Tensor,
    *,
    topk: int,
    temperature: float,
    radius: float,
    context: int,
    query_chunk: int = 128,
) -> torch.Tensor:
    """Propagate labels with the full (h*w) x ((1+context)*h*w) affinity per target frame.

    Args:
        features: (T, C, h, w) L2-normalised features.
        first_labels: (h, w, K) soft one-hot labels of frame 0.
        topk: neighbours kept per query.
        temperature: softmax temperature applied to cosine similarities.
        radius: strict spatial radius (feature cells) for the short-term context frames.
        context: number m of preceding frames attended (padded with copies of frame 0).
        query_chunk: query locations scored at a time (memory knob only).

    Returns:
        (T, h, w, K) soft labels; frame 0 is ``first_labels``.
    """
    validate_inputs(features, first_labels, topk=topk, temperature=temperature, context=context)
    T, C, h, w = features.shape
    K = first_labels.shape[-1]
    feats = features.float().flatten(2)  # (T, C, hw)
    labels = torch.zeros(T, h * w, K, dtype=torch.float32, device=features.device)
    labels[0] = first_labels.reshape(h * w, K).float()
    # Additive mask for the short-term frames: 0 inside the radius, -1e10 outside (as CRW does).
    bias = torch.zeros(h * w, h * w, device=features.device)
    bias[~radius_mask(h, w, radius, device=features.device)] = -1e10
    for t in range(1, T):
        ctx = context_frame_indices(t, context)
        keys = torch.cat([feats[0]] + [feats[i] for i in ctx], dim=1)  # (C, (1+m)*hw)
        key_labels = torch.cat([labels[0]] + [labels[i] for i in ctx], dim=0)  # ((1+m)*hw, K)
        out = []
        for q0 in range(0, h * w, query_chunk):
            q = feats[t][:, q0 : q0 + query_chunk]  # (C, n)
            sim = q.T @ keys  # (n, (1+m)*hw)
            n = sim.shape[0]
            sim = sim.view(n, 1 + len(ctx), h * w)
            sim[:, 1:] += bias[q0 : q0 + n][:, None, :]
            sim = sim.view(n, -1) / temperature
            vals, idx = torch.topk(sim, topk, dim=1)
            weights = F.softmax(vals, dim=1)
            out.append((key_labels[idx] * weights[..., None]).sum(1))
        labels[t] = torch.cat(out, dim=0)
    return labels.view(T, h, w, K)
