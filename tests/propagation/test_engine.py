"""Tests of :mod:`sfc.propagation.engine`, the windowed streaming label-propagation engine.

The engine must equal :func:`sfc.propagation.reference.propagate_full`, the straightforward
full-affinity implementation of the CRW/SFC protocol (the lead checked that one against the official
SFC code outside the repository), on every configuration: odd sizes, every tile shape, radius below
one cell / fractional / larger than the image, context 0 / 1 / longer than the video, top-k 1 / all
locations, both CPU BLAS backends, with and without the tile thread pool. Then properties (frame 0
unchanged, convex combinations, tile independence, streaming == batch, memory flat in T), the exact
grouped top-k, input validation, a CUDA twin, and tie-heavy features where ties may be ordered
differently.

Every case is tiny (C <= 32, h, w <= 20, T <= 12) so the whole file runs in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from sfc.propagation import blas
from sfc.propagation.blas import cpu_backend
from sfc.propagation.engine import (
    Propagator,
    context_frame_indices,
    grouped_topk,
    iter_propagate,
    propagate,
    validate_inputs,
)
from sfc.propagation.reference import propagate_full

TEMPERATURE = 0.07


# ----------------------------------------------------------------------------------------- helpers
def _features(T: int, C: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(T, C, h, w) random L2-normalised features (continuous: no exact ties)."""
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(T, C, h, w, generator=gen), dim=1)


def _labels(h: int, w: int, K: int, *, onehot: bool, seed: int = 1) -> torch.Tensor:
    """(h, w, K) first-frame labels: one-hot, or soft rows summing to 1."""
    gen = torch.Generator().manual_seed(seed)
    if onehot:
        return F.one_hot(torch.randint(0, K, (h, w), generator=gen), K).float()
    soft = torch.rand(h, w, K, generator=gen) + 0.05
    return soft / soft.sum(-1, keepdim=True)


def _smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, h, w) maps (replicate padding)."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    C = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(
        F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C
    )


def _assert_matches_reference(ours: torch.Tensor, ref: torch.Tensor, atol: float = 1e-5) -> None:
    assert ours.shape == ref.shape
    diff = (ours.cpu() - ref.cpu()).abs().max().item() if ours.numel() else 0.0
    assert diff <= atol, f"max abs diff {diff:.3g} > {atol}"
    agree = (ours.cpu().argmax(-1) == ref.cpu().argmax(-1)).float().mean().item()
    assert agree == 1.0, f"argmax agreement {agree:.6f} < 100%"


def _state_bytes(obj: object, seen: set[int] | None = None) -> int:
    """Bytes of every distinct tensor reachable from ``obj``'s attributes (dicts, lists, caches).

    Walks the state generically so that the test does not depend on the engine's internal layout.
    """
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(_state_bytes(v, seen) for v in obj.values())
    if isinstance(obj, list | tuple | set):
        return sum(_state_bytes(v, seen) for v in obj)
    if isinstance(obj, Propagator):
        return sum(_state_bytes(v, seen) for v in vars(obj).values())
    return 0


@pytest.fixture
def blas_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Force the CPU GEMM backend named by the test's parameter (``cpu_backend`` is cached)."""
    name: str = request.param
    monkeypatch.setenv("SFC_CPU_BLAS", name)
    cpu_backend.cache_clear()
    assert cpu_backend() == name
    yield name
    cpu_backend.cache_clear()  # later tests pick the backend again (after monkeypatch's undo)


@pytest.fixture
def tile_threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``"1"``: tiles on the calling thread (SFC_TILE_THREADS=1); ``"pool"``: the tile thread pool."""
    mode: str = request.param
    n = torch.get_num_threads()
    if mode == "1":
        monkeypatch.setenv("SFC_TILE_THREADS", "1")
    else:
        monkeypatch.delenv("SFC_TILE_THREADS", raising=False)
        torch.set_num_threads(max(2, n))  # the pool needs >= 2 threads, even on a 1-core runner
    yield mode
    torch.set_num_threads(n)


# ------------------------------------------------------------------------ equality with reference
# (T, C, h, w, K, topk, radius, context, tile, onehot)
CASES = [
    pytest.param(6, 16, 7, 9, 3, 5, 2.9, 3, (8, 8), False, id="odd-size-tile8"),
    pytest.param(5, 8, 11, 13, 2, 5, 1.5, 2, (3, 5), True, id="odd-size-tile3x5-onehot"),
    pytest.param(6, 16, 17, 19, 4, 5, 12.0, 3, (16, 32), False, id="radius12-tile16x32"),
    pytest.param(6, 16, 20, 13, 4, 3, 12.0, 3, (16, 32), True, id="radius12-tile-wider-than-image"),
    pytest.param(4, 8, 9, 10, 5, 5, 0.0, 3, (8, 8), False, id="radius0-no-short-term"),
    pytest.param(5, 8, 9, 10, 3, 1, 0.5, 3, (3, 5), True, id="radius0.5-same-cell-topk1"),
    pytest.param(5, 8, 9, 10, 3, 5, 1.0, 2, (1, 1), False, id="radius1-tile1x1"),
    pytest.param(6, 8, 6, 7, 2, 5, 50.0, 3, (8, 8), False, id="radius-larger-than-image"),
    pytest.param(5, 8, 9, 10, 3, 5, 2.9, 0, (3, 5), False, id="context0"),
    pytest.param(7, 8, 9, 10, 3, 5, 2.9, 1, (8, 8), True, id="context1"),
    pytest.param(4, 8, 9, 10, 3, 5, 2.9, 10, (3, 5), False, id="context-longer-than-video"),
    pytest.param(4, 8, 6, 7, 3, 42, 2.9, 3, (3, 5), False, id="topk-all-locations"),
    pytest.param(4, 8, 6, 7, 2, 42, 0.0, 2, (8, 8), True, id="topk-all-locations-radius0"),
    pytest.param(1, 8, 6, 7, 3, 5, 2.9, 3, None, False, id="T1"),
    pytest.param(5, 8, 6, 7, 1, 5, 2.9, 3, (3, 5), True, id="K1-onehot"),
    pytest.param(5, 8, 6, 7, 1, 5, 2.9, 3, (3, 5), False, id="K1-soft"),
    pytest.param(12, 32, 20, 20, 5, 10, 4.5, 4, None, False, id="T12-default-tile"),
    pytest.param(12, 32, 20, 20, 2, 10, 3.5, 20, (8, 8), True, id="T12-context20"),
    pytest.param(8, 16, 13, 17, 2, 7, 2.5, 5, (1, 1), False, id="tile1x1-context5"),
    pytest.param(6, 16, 5, 6, 4, 5, 2.0, 3, (8, 8), True, id="tile-larger-than-image"),
    pytest.param(6, 16, 1, 15, 3, 4, 3.0, 2, (3, 5), False, id="single-row"),
    pytest.param(6, 16, 14, 1, 3, 4, 3.0, 2, (3, 5), True, id="single-column"),
]


@pytest.mark.parametrize(("T", "C", "h", "w", "K", "topk", "radius", "context", "tile", "onehot"), CASES)
def test_propagate_equals_reference(
    T: int,
    C: int,
    h: int,
    w: int,
    K: int,
    topk: int,
    radius: float,
    context: int,
    tile: tuple[int, int] | None,
    onehot: bool,
) -> None:
    feats, labels = _features(T, C, h, w), _labels(h, w, K, onehot=onehot)
    kw = {"topk": topk, "temperature": TEMPERATURE, "radius": radius, "context": context}
    ours = propagate(feats, labels, tile=tile, **kw)
    _assert_matches_reference(ours, propagate_full(feats, labels, **kw))


BACKEND_CASES = [
    pytest.param(6, 16, 11, 13, 3, 5, 2.9, 3, (3, 5), id="odd"),
    pytest.param(8, 32, 20, 19, 4, 10, 12.0, 5, (8, 8), id="radius12"),
    pytest.param(5, 8, 9, 10, 2, 5, 0.5, 2, (1, 1), id="radius0.5-tile1x1"),
]


@pytest.mark.parametrize("blas_backend", ["numpy", "torch"], indirect=True)
@pytest.mark.parametrize("tile_threads", ["1", "pool"], indirect=True)
@pytest.mark.parametrize(("T", "C", "h", "w", "K", "topk", "radius", "context", "tile"), BACKEND_CASES)
def test_backends_and_threads_equal_reference(
    blas_backend: str,
    tile_threads: str,
    T: int,
    C: int,
    h: int,
    w: int,
    K: int,
    topk: int,
    radius: float,
    context: int,
    tile: tuple[int, int],
) -> None:
    feats, labels = _features(T, C, h, w, seed=3), _labels(h, w, K, onehot=False, seed=4)
    kw = {"topk": topk, "temperature": TEMPERATURE, "radius": radius, "context": context}
    ours = propagate(feats, labels, tile=tile, **kw)
    if tile_threads == "pool":
        assert blas._POOLS, "the tile thread pool was not used"
    _assert_matches_reference(ours, propagate_full(feats, labels, **kw))


# ------------------------------------------------------------------------------------ properties
def test_first_frame_returned_unchanged() -> None:
    feats, labels = _features(4, 8, 9, 11), _labels(9, 11, 3, onehot=False)
    out = propagate(feats, labels, topk=5, temperature=TEMPERATURE, radius=3.0, context=2)
    assert out.dtype == torch.float32
    assert torch.equal(out[0], labels)


@pytest.mark.parametrize("radius", [0.0, 2.5, 30.0])
@pytest.mark.parametrize("context", [0, 2, 7])
def test_outputs_are_convex_combinations(radius: float, context: int) -> None:
    gen = torch.Generator().manual_seed(5)
    # Unnormalised positive labels: row sums vary, so the test sees which sums are preserved.
    labels = torch.rand(10, 12, 4, generator=gen) * 3
    feats = _features(7, 16, 10, 12, seed=6)
    out = propagate(feats, labels, topk=6, temperature=TEMPERATURE, radius=radius, context=context)
    sums = out.sum(-1)
    lo, hi = labels.sum(-1).min().item(), labels.sum(-1).max().item()
    assert sums.min().item() >= lo - 1e-5 and sums.max().item() <= hi + 1e-5
    ch_lo, ch_hi = labels.amin(dim=(0, 1)), labels.amax(dim=(0, 1))
    assert bool((out >= ch_lo - 1e-6).all()) and bool((out <= ch_hi + 1e-6).all())
    # Rows summing to 1 (soft one-hot) keep summing to 1.
    soft = labels / labels.sum(-1, keepdim=True)
    out = propagate(feats, soft, topk=6, temperature=TEMPERATURE, radius=radius, context=context)
    torch.testing.assert_close(out.sum(-1), torch.ones(7, 10, 12), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("radius", "context"), [(2.9, 3), (12.0, 5), (0.5, 2)])
def test_results_independent_of_tile(radius: float, context: int) -> None:
    feats, labels = _features(7, 16, 13, 18, seed=7), _labels(13, 18, 3, onehot=False)
    kw = {"topk": 6, "temperature": TEMPERATURE, "radius": radius, "context": context}
    base = propagate(feats, labels, tile=(1, 1), **kw)
    for tile in [(3, 5), (8, 8), (16, 32), (13, 18), (2, 17)]:
        torch.testing.assert_close(propagate(feats, labels, tile=tile, **kw), base, atol=1e-6, rtol=0)


@pytest.mark.parametrize("context", [0, 3, 9])
def test_streaming_step_equals_propagate(context: int) -> None:
    feats, labels = _features(8, 16, 11, 12, seed=8), _labels(11, 12, 4, onehot=True)
    kw = {"topk": 5, "temperature": TEMPERATURE, "radius": 3.5, "context": context}
    batch = propagate(feats, labels, **kw)
    prop = Propagator(feats[0], labels, **kw)
    for t in range(1, 8):
        assert prop.t == t
        torch.testing.assert_close(prop.step(feats[t]), batch[t], atol=1e-7, rtol=0)
    streamed = torch.stack(list(iter_propagate(iter(feats), labels, **kw)))
    torch.testing.assert_close(streamed, batch, atol=1e-7, rtol=0)


@pytest.mark.parametrize(("context", "resume_at"), [(3, 2), (3, 6), (9, 5)])
def test_restore_resumes_exactly(context: int, resume_at: int) -> None:
    feats, labels = _features(8, 16, 11, 12, seed=8), _labels(11, 12, 4, onehot=True)
    kw = {"topk": 5, "temperature": TEMPERATURE, "radius": 3.5, "context": context}
    first = Propagator(feats[0], labels, **kw)
    soft = {t: first.step(feats[t]) for t in range(1, resume_at)}  # the run that was interrupted
    resumed = Propagator(feats[0], labels, **kw)
    resumed.restore([(t, feats[t], soft[t]) for t in range(max(1, resume_at - context), resume_at)], resume_at)
    uninterrupted = propagate(feats, labels, **kw)
    for t in range(resume_at, 8):
        assert torch.equal(resumed.step(feats[t]), uninterrupted[t])
    with pytest.raises(RuntimeError, match="has not stepped"):
        resumed.restore([], 2)


@pytest.mark.parametrize("tile", [None, (3, 5)])
def test_propagator_memory_does_not_grow_with_video_length(tile: tuple[int, int] | None) -> None:
    m, C, h, w, K, T = 3, 16, 10, 11, 3, 40
    feats, labels = _features(T, C, h, w, seed=9), _labels(h, w, K, onehot=False)
    # Frames arrive as separate tensors (streaming); storage-based sizes then also catch references
    # kept to stepped frames. (A view of a whole-video tensor would count the video's storage.)
    prop = Propagator(
        feats[0].clone(), labels, topk=5, temperature=TEMPERATURE, radius=4.0, context=m, tile=tile
    )
    sizes = [_state_bytes(prop)]
    for t in range(1, T):
        prop.step(feats[t].clone())
        sizes.append(_state_bytes(prop))
    # Once frame 0 has left the short-term context (t > m) the state is fixed: a ring of m frames.
    assert len(set(sizes[m + 1 :])) == 1, sizes
    assert max(sizes[2:]) <= sizes[1], f"state grew while stepping: {sizes}"
    # Far below what keeping the video would cost (T frames of features and labels).
    assert sizes[-1] < T * h * w * (C + K) * 4, (sizes[-1], T * h * w * (C + K) * 4)


@pytest.mark.parametrize(
    ("t", "m", "expected"),
    [
        (1, 3, [0, 0, 0]),
        (2, 3, [0, 0, 1]),
        (3, 3, [0, 1, 2]),
        (4, 3, [1, 2, 3]),
        (5, 3, [2, 3, 4]),
        (1, 1, [0]),
        (10, 1, [9]),
        (7, 0, []),
        (2, 20, [0] * 19 + [1]),
    ],
)
def test_context_frame_indices(t: int, m: int, expected: list[int]) -> None:
    assert context_frame_indices(t, m) == expected


# ----------------------------------------------------------------------------------- grouped_topk
@pytest.mark.parametrize(
    ("n", "g", "G", "k"),
    [(5, 3, 7, 4), (4, 2, 3, 5), (3, 1, 2, 5), (6, 8, 1, 3), (2, 4, 10, 1), (7, 5, 6, 30), (3, 6, 9, 9)],
)
@pytest.mark.parametrize("bias", ["none", "finite", "with-inf"])
def test_grouped_topk_matches_torch_topk(n: int, g: int, G: int, k: int, bias: str) -> None:
    gen = torch.Generator().manual_seed(n * 100 + g * 10 + G)
    x = torch.randn(n, g, G, generator=gen)
    group_bias = None
    if bias != "none":
        group_bias = torch.randn(n, G, generator=gen)
        if bias == "with-inf":
            group_bias[torch.rand(n, G, generator=gen) < 0.4] = float("-inf")
            group_bias[0] = float("-inf")  # a row with every group excluded
    vals, member, group = grouped_topk(x, k, group_bias)
    full = x if group_bias is None else x + group_bias.unsqueeze(1)
    k_eff = min(k, min(k, G) * g)
    assert vals.shape == member.shape == group.shape == (n, k_eff)
    expected = torch.topk(full.reshape(n, g * G), k_eff, dim=1).values
    assert torch.equal(vals, expected)
    # The indices point at the returned values.
    assert torch.equal(full[torch.arange(n).view(n, 1), member, group], vals)
    assert bool((member >= 0).all() & (member < g).all() & (group >= 0).all() & (group < G).all())


def test_grouped_topk_values_exact_with_tied_group_maxima() -> None:
    gen = torch.Generator().manual_seed(11)
    x = torch.randint(0, 3, (20, 4, 6), generator=gen).float()  # many equal values and group maxima
    for k in (1, 3, 5, 8):
        vals, member, group = grouped_topk(x, k)
        assert torch.equal(vals, torch.topk(x.reshape(20, 24), k, dim=1).values)
        assert torch.equal(x[torch.arange(20).view(20, 1), member, group], vals)


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("feat_shape", "label_shape", "kwargs", "match"),
    [
        ((6, 7, 3), (6, 7, 2), {}, r"features must be \(T, C, h, w\)"),
        ((2, 4, 6, 7, 1), (6, 7, 2), {}, r"features must be \(T, C, h, w\)"),
        ((3, 4, 6, 7), (6, 7), {}, r"first_labels must be \(h, w, K\)"),
        ((3, 4, 6, 7), (7, 6, 2), {}, r"spatial size \(7, 6\) != feature size \(6, 7\)"),
        ((3, 4, 6, 7), (6, 7, 2), {"topk": 43}, r"topk=43 exceeds the 42 locations"),
        ((3, 4, 6, 7), (6, 7, 2), {"topk": 0}, r"topk must be >= 1"),
        ((3, 4, 6, 7), (6, 7, 2), {"temperature": 0.0}, r"temperature must be > 0"),
        ((3, 4, 6, 7), (6, 7, 2), {"temperature": -0.1}, r"temperature must be > 0"),
        ((3, 4, 6, 7), (6, 7, 2), {"temperature": float("nan")}, r"temperature must be > 0"),
        ((3, 4, 6, 7), (6, 7, 2), {"context": -1}, r"context must be >= 0"),
    ],
)
def test_invalid_inputs_raise(
    feat_shape: tuple[int, ...], label_shape: tuple[int, ...], kwargs: dict, match: str
) -> None:
    kw = {"topk": 5, "temperature": TEMPERATURE, "radius": 2.0, "context": 2} | kwargs
    feats, labels = torch.zeros(feat_shape), torch.zeros(label_shape)
    with pytest.raises(ValueError, match=match):
        propagate(feats, labels, **kw)
    with pytest.raises(ValueError, match=match):
        propagate_full(feats, labels, **kw)
    valid_kw = {k: v for k, v in kw.items() if k != "radius"}
    with pytest.raises(ValueError, match=match):
        validate_inputs(feats, labels, **valid_kw)


@pytest.mark.parametrize("bad_shape", [(4, 6, 8), (5, 6, 7), (4, 6, 7, 1), (4, 42)])
def test_step_rejects_wrong_feature_shape(bad_shape: tuple[int, ...]) -> None:
    feats, labels = _features(2, 4, 6, 7), _labels(6, 7, 2, onehot=True)
    prop = Propagator(feats[0], labels, topk=5, temperature=TEMPERATURE, radius=2.0, context=2)
    with pytest.raises(ValueError, match=r"frame 1: features of shape .* expected \(4, 6, 7\)"):
        prop.step(torch.zeros(bad_shape))
    prop.step(feats[1])  # the failed call did not advance the state
    assert prop.t == 2


def test_propagator_rejects_bad_first_frame() -> None:
    with pytest.raises(ValueError, match=r"first_features must be \(C, h, w\)"):
        Propagator(
            torch.zeros(1, 4, 6, 7), torch.zeros(6, 7, 2), topk=5, temperature=0.1, radius=2, context=1
        )
    with pytest.raises(ValueError, match=r"first_labels must be \(h, w, K\) with \(h, w\) = \(6, 7\)"):
        Propagator(torch.zeros(4, 6, 7), torch.zeros(7, 6, 2), topk=5, temperature=0.1, radius=2, context=1)


def test_iter_propagate_rejects_empty_video() -> None:
    with pytest.raises(ValueError, match="no frames"):
        list(iter_propagate([], torch.zeros(6, 7, 2), topk=5, temperature=0.1, radius=2.0, context=1))


# ------------------------------------------------------------------------------------- tie-heavy
def _tie_heavy_video(T: int, C: int, h: int, w: int, K: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatially smooth features quantised to 5 levels per channel: many identical key vectors.

    Features mix a smooth per-object embedding with smooth noise (so similar features tend to share
    labels, as in real videos), then each channel is rounded to {-1, -.5, 0, .5, 1} before
    re-normalising: many keys tie exactly, including at the top-k boundary.
    """
    gen = torch.Generator().manual_seed(seed)
    seg = _smooth(torch.randn(1, K, h, w, generator=gen), 2.0)[0].argmax(0)
    emb = torch.randn(K, C, generator=gen)
    base = _smooth(torch.randn(1, C, h, w, generator=gen), 2.0)[0]
    frames = [
        0.4 * emb[seg].permute(2, 0, 1) + base + 0.3 * _smooth(torch.randn(1, C, h, w, generator=gen), 1.5)[0]
        for _ in range(T)
    ]
    feats = F.normalize(torch.stack(frames), dim=1)
    feats = F.normalize(torch.round(feats * 2) / 2, dim=1)
    return feats, F.one_hot(seg, K).float()


@pytest.mark.parametrize(
    ("topk", "radius", "context"), [(5, 3.0, 3), (10, 4.5, 4), (20, 12.0, 20), (1, 2.0, 2)]
)
def test_tie_heavy_features_agree_with_reference(topk: int, radius: float, context: int) -> None:
    feats, labels = _tie_heavy_video(10, 16, 20, 20, 4, seed=12)
    # The test is only meaningful if ties are common at the top-k boundary (frame 1 vs frame 0).
    q, k0 = feats[1].flatten(1).T, feats[0].flatten(1)
    top = torch.topk(q @ k0, topk + 1, dim=1).values
    assert (top[:, topk - 1] == top[:, topk]).float().mean().item() > 0.3
    kw = {"topk": topk, "temperature": 0.1, "radius": radius, "context": context}
    ours, ref = propagate(feats, labels, **kw), propagate_full(feats, labels, **kw)
    agree = (ours.argmax(-1)[1:] == ref.argmax(-1)[1:]).float().mean().item()
    assert agree >= 0.999, f"argmax agreement {agree:.5f} < 99.9% on tie-heavy features"
    torch.testing.assert_close(ours.sum(-1), torch.ones(10, 20, 20), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------ CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: GPU twin not run")
@pytest.mark.parametrize(
    ("T", "C", "h", "w", "K", "topk", "radius", "context", "tile"),
    [
        (8, 32, 20, 19, 4, 10, 12.0, 5, None),
        (6, 16, 11, 13, 3, 5, 2.9, 3, (3, 5)),
        (5, 8, 9, 10, 2, 1, 0.5, 7, (16, 32)),
    ],
)
def test_cuda_matches_cpu(
    T: int,
    C: int,
    h: int,
    w: int,
    K: int,
    topk: int,
    radius: float,
    context: int,
    tile: tuple[int, int] | None,
) -> None:
    feats, labels = _features(T, C, h, w, seed=13), _labels(h, w, K, onehot=False)
    kw = {"topk": topk, "temperature": TEMPERATURE, "radius": radius, "context": context}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 would round similarities to ~1e-3
    try:
        gpu = propagate(feats.cuda(), labels.cuda(), tile=tile, **kw)
        ref_gpu = propagate_full(feats.cuda(), labels.cuda(), **kw)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    assert gpu.device.type == "cuda"
    cpu = propagate(feats, labels, tile=tile, **kw)
    _assert_matches_reference(gpu, cpu)
    _assert_matches_reference(gpu, ref_gpu)


def test_state_is_one_ring_and_one_column_band() -> None:
    """Context memory: a plain ring of m frames plus one tile column's band (not a band per column).

    This is what keeps a fused ResNet-50 + FC evaluation (C = 1280) at full DAVIS resolution near
    1 GiB: a ring of overlapping bands for every tile column would be (tile width + 2 r') / tile
    width times the ring.
    """
    m, C, h, w, K, tile, radius = 4, 32, 24, 40, 3, (4, 4), 5.0
    feats, labels = _features(m + 3, C, h, w, seed=11), _labels(h, w, K, onehot=False)
    prop = Propagator(feats[0].clone(), labels, topk=5, temperature=TEMPERATURE, radius=radius, context=m, tile=tile)
    for t in range(1, m + 3):
        prop.step(feats[t].clone())
    band_w = tile[1] + 2 * 4  # reach: largest integer offset strictly inside r' = 5
    ring = m * h * w * (C + K) * 4
    band = m * h * band_w * (C + K) * 4
    frame0 = h * w * (C + K) * 4
    # Bias caches, scratch GEMM outputs and top-k buffers are small next to these.
    assert _state_bytes(prop) <= ring + band + frame0 + 2 * h * w * 64 * 4 + 2**20
    assert _state_bytes(prop) < (w // tile[1]) * band  # far below one band per tile column


def test_phase_timings_count_the_flops_of_each_gemm() -> None:
    """``timings=True`` records thread-seconds per phase and the GEMM FLOPs the benchmark reports."""
    m, C, h, w, K, T = 2, 16, 10, 12, 3, 5
    feats, labels = _features(T, C, h, w, seed=12), _labels(h, w, K, onehot=False)
    prop = Propagator(feats[0], labels, topk=4, temperature=TEMPERATURE, radius=3.0, context=m, tile=(5, 6), timings=True)
    for t in range(1, T):
        prop.step(feats[t])
    assert prop.times is not None
    hw = h * w
    assert prop.times.flops["first-frame GEMM"] == 2.0 * hw * hw * C * (T - 1)
    # Context GEMM: every tile against its window (rows +- 2, band of 6 + 2 * 2 columns) in every
    # slot in use: m slots each frame (ring frames plus frame 0 while padded copies are in context).
    lay = prop.layout
    per_frame = sum(
        2.0 * min(lay.th, h - y0) * min(lay.tw, w - tx * lay.tw) * C * lay.bw
        * (lay.row_window(y0, min(lay.th, h - y0))[1] - lay.row_window(y0, min(lay.th, h - y0))[0])
        for tx, y0 in lay.tiles()
    )
    slots = [min(m, t) for t in range(1, T)]  # t <= m: t - 1 ring frames + frame 0; then m ring frames
    assert prop.times.flops["context GEMM"] == pytest.approx(per_frame * sum(slots))
    assert all(prop.times.seconds[p] > 0 for p in prop.times.PHASES)
    assert prop.times.flops["select"] == 0.0
