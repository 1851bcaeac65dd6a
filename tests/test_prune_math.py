"""hr_jax.pruning (HeadRouter math, candidates, top-k, baselines, DART, router files, calibration math)
vs plain NumPy transcriptions of the paper's equations."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hr_jax.pruning import baselines, dart, headrouter, topk
from hr_jax.pruning.calibration import calibrate_centers, profile_from_ablation
from hr_jax.pruning.methods import HEADROUTER_METHODS
from hr_jax.pruning.router import Router, RouterArrays, RouterError

RNG = np.random.default_rng(0)

# Jitted entry points (one compile per shape instead of eager op-by-op dispatch; keeps the file fast).
probe_attention = jax.jit(headrouter.probe_attention)
selectivity = jax.jit(headrouter.selectivity)
select_topk = jax.jit(topk.select_topk, static_argnames=("k_max",))
prefilter_candidates = jax.jit(topk.prefilter_candidates, static_argnames=("lam", "Na"))
frame_candidates = jax.jit(topk.frame_candidates, static_argnames=("Na",))
fastv_scores = jax.jit(baselines.fastv_scores)
random_scores = jax.jit(baselines.random_scores)
dart_select = jax.jit(dart.dart_select)
headrouter_scores = jax.jit(headrouter.headrouter_scores, static_argnames=("mode",))
route = jax.jit(headrouter.route)
route_hard = jax.jit(headrouter.route_hard)


def prefix_mask(counts, n):
    return np.arange(n)[None, :] < np.asarray(counts)[:, None]


def with_garbage(x, mask, rng, nan=True):
    """Fill masked-out slots (mask False along axis 1) with huge values and NaN."""
    x = np.array(x, dtype=np.float32)
    bad = ~mask
    junk = rng.normal(size=x.shape).astype(np.float32) * 1e4
    if nan:
        junk.reshape(-1)[::3] = np.nan
    sel = bad.reshape(bad.shape + (1,) * (x.ndim - 2))
    return np.where(sel, junk, x)


# --------------------------------------------------------------------------------------------------
# NumPy references (loops over rows / heads, literal equations)
# --------------------------------------------------------------------------------------------------


def np_probe(q, k, n_text, n_audio):
    B, T, Hq, D = q.shape
    Hkv = k.shape[2]
    out = np.zeros((B, Hq, k.shape[1]))
    for b in range(B):
        for h in range(Hq):
            kv = h // (Hq // Hkv)
            Q = q[b, : n_text[b], h].astype(np.float64)
            K = k[b, : n_audio[b], kv].astype(np.float64)
            A = Q @ K.T / np.sqrt(D)  # Eq. 16
            A = A - A.max(axis=1, keepdims=True)
            S = np.exp(A) / np.exp(A).sum(axis=1, keepdims=True)
            out[b, h, : n_audio[b]] = S.mean(axis=0)  # Eq. 17
    return out


def np_selectivity(p, n_audio):
    B, H, _ = p.shape
    sel = np.ones((B, H))
    for b in range(B):
        n = n_audio[b]
        if n <= 1:
            continue
        for h in range(H):
            ph = p[b, h, :n]
            s = sum(x * math.log(x) for x in ph if x > 0)
            sel[b, h] = 1 + s / math.log(n)  # Eq. 10
    return sel


def np_route(spr, mu, sigma):
    out = []
    for s in spr:
        e = [math.exp(-((s - m) ** 2) / (2 * sigma**2)) for m in mu]  # Eq. 13
        out.append([x / sum(e) for x in e])
    return np.array(out)


def np_importance(p, alpha, w_sem, w_aco):
    H = len(w_sem)
    out = []
    for b in range(p.shape[0]):
        w = alpha[b, 0] * np.asarray(w_sem) + alpha[b, 1] / H + alpha[b, 2] * np.asarray(w_aco)  # Eq. 14
        wbar = w / w.sum()  # Eq. 7
        out.append(sum(wbar[h] * p[b, h] for h in range(H)))  # Eq. 8
    return np.array(out)


def np_topk(scores, cand_idx, k):
    """Reference Eq. 5 with ties to the earlier index: sort by (-score, index)."""
    order = sorted(cand_idx, key=lambda j: (-scores[j], j))
    return sorted(order[:k])


def keep_idx(mask_row):
    return sorted(np.nonzero(np.asarray(mask_row))[0].tolist())


# --------------------------------------------------------------------------------------------------
# HeadRouter scores
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_case():
    rng = np.random.default_rng(1)
    B, T, Na, Hq, Hkv, D = 3, 6, 11, 8, 2, 16
    n_text = np.array([6, 2, 4])
    n_audio = np.array([11, 7, 1])
    tm, am = prefix_mask(n_text, T), prefix_mask(n_audio, Na)
    q = with_garbage(rng.normal(size=(B, T, Hq, D)), tm, rng)
    k = with_garbage(rng.normal(size=(B, Na, Hkv, D)), am, rng)
    return q, k, tm, am, n_text, n_audio


def test_probe_attention_gqa_masked(probe_case):
    q, k, tm, am, n_text, n_audio = probe_case
    p = np.asarray(probe_attention(jnp.asarray(q), jnp.asarray(k), tm, am))
    assert p.dtype == np.float32 and p.shape == (3, 8, 11)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, np_probe(q, k, n_text, n_audio), rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    assert np.all(p[~np.broadcast_to(am[:, None, :], p.shape)] == 0)


def test_probe_attention_bf16_is_float32(probe_case):
    q, k, tm, am, *_ = probe_case
    qb = jnp.asarray(np.nan_to_num(q), jnp.bfloat16)
    kb = jnp.asarray(np.nan_to_num(k), jnp.bfloat16)
    p = probe_attention(qb, kb, tm, am)
    assert p.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(p).sum(-1), 1.0, rtol=1e-5)


def test_probe_attention_empty_rows():
    q = jnp.ones((2, 3, 4, 8))
    k = jnp.ones((2, 5, 2, 8))
    p = probe_attention(q, k, np.array([[0, 0, 0], [1, 0, 0]], bool), np.array([[1] * 5, [0] * 5], bool))
    assert np.all(np.asarray(p) == 0)


def test_selectivity_spread_route_importance(probe_case):
    q, k, tm, am, n_text, n_audio = probe_case
    rng = np.random.default_rng(2)
    p = probe_attention(jnp.asarray(q), jnp.asarray(k), tm, am)
    p_np = np.asarray(p, np.float64)
    sel = np.asarray(selectivity(p, n_audio))
    ref_sel = np_selectivity(p_np, n_audio)
    np.testing.assert_allclose(sel, ref_sel, rtol=1e-5, atol=1e-6)
    assert np.all(sel[2] == 1.0)  # Na_b = 1 guard
    spr = np.asarray(headrouter.spread(sel))
    np.testing.assert_allclose(spr, [np.sqrt(np.mean((r - r.mean()) ** 2)) for r in ref_sel], atol=1e-6)

    mu, sigma = np.array([0.02, 0.05, 0.09]), 0.03
    alpha = np.asarray(route(spr, mu, sigma))
    np.testing.assert_allclose(alpha, np_route(spr, mu, sigma), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-6)

    w_sem, w_aco = rng.random(8), rng.random(8)
    w = headrouter.mix_profiles(alpha, w_sem, w_aco)
    imp = np.asarray(headrouter.importance(p, w))
    np.testing.assert_allclose(imp, np_importance(p_np, alpha, w_sem, w_aco), rtol=1e-5, atol=1e-7)

    router = RouterArrays(jnp.asarray(w_sem), jnp.asarray(w_aco), jnp.asarray(mu), jnp.asarray(sigma))
    scores, spr2, alpha2, sel2 = headrouter_scores(
        jnp.asarray(q), jnp.asarray(k), tm, am, router, mode="soft"
    )
    np.testing.assert_allclose(np.asarray(scores), imp, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.asarray(spr2), spr, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sel2), np.asarray(sel), rtol=1e-6)


def test_selectivity_extremes_and_garbage():
    # one-hot -> 1, uniform -> 0; garbage beyond num_audio ignored; 0 log 0 = 0.
    p = np.zeros((2, 2, 6), np.float32)
    p[0, 0, 2] = 1.0
    p[0, 1, :4] = 0.25
    p[0, :, 4:] = np.nan
    p[1, :, 0] = 1.0
    sel = np.asarray(selectivity(p, np.array([4, 0])))
    np.testing.assert_allclose(sel, [[1.0, 0.0], [1.0, 1.0]], atol=1e-6)


def test_route_extremes_and_hard():
    mu, sigma = np.array([0.0, 0.5, 1.0]), 1e-3
    spr = np.array([-50.0, 0.26, 0.74, 100.0, 0.25])  # far away / tiny sigma: no NaN, one-hot
    alpha = np.asarray(route(spr, mu, sigma))
    assert np.all(np.isfinite(alpha))
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-6)
    hard = np.asarray(route_hard(spr, mu, sigma))
    np.testing.assert_array_equal(hard.argmax(-1), [0, 1, 1, 2, 0])  # 0.25 tie -> semantic
    assert np.all(hard.sum(-1) == 1)
    spr = RNG.random(7)
    a = np.asarray(route(spr, mu, 0.3))
    np.testing.assert_array_equal(np.asarray(route_hard(spr, mu, 0.3)).argmax(-1), a.argmax(-1))


@pytest.mark.parametrize("mode,expect", [("uniform", 1), ("semantic", 0), ("acoustic", 2)])
def test_routing_alpha_fixed(mode, expect):
    a = np.asarray(headrouter.routing_alpha(np.array([0.1, 0.9]), np.array([0.0, 0.5, 1.0]), 0.2, mode))
    np.testing.assert_array_equal(a, np.eye(3)[[expect, expect]])
    w = np.asarray(headrouter.mix_profiles(a, np.arange(4.0), np.ones(4) * 7))
    ref = [np.arange(4.0), np.full(4, 0.25), np.full(4, 7.0)][expect]
    np.testing.assert_allclose(w, [ref, ref])
    with pytest.raises(ValueError):
        headrouter.routing_alpha(np.array([0.1]), np.zeros(3), 1.0, "bogus")


# --------------------------------------------------------------------------------------------------
# Candidates and selection
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [2, 1.5, 3, 1.1, None, float("inf")])
def test_prefilter_candidates(lam):
    Na = 40
    cases = [(40, 13), (40, 20), (40, 0), (37, 7), (1, 1), (0, 0), (25, 25), (9, 3), (40, 1)]
    n = np.array([c[0] for c in cases])
    k = np.array([c[1] for c in cases])
    got = np.asarray(prefilter_candidates(n, k, lam, Na))
    for b, (nb, kb) in enumerate(cases):
        if lam is None or math.isinf(lam):
            ref = list(range(nb))
        else:
            exact = Fraction(str(lam)) * kb  # lambda as written in decimal
            c = min(nb, math.ceil(exact))
            if lam in (2, 1.5, 3):
                assert c == min(nb, math.ceil(lam * kb))  # float64 semantics agree for these
            assert c == topk.prefilter_count(nb, kb, lam)
            ref = sorted({(i * nb) // c for i in range(c)})
            assert len(ref) == c
        assert keep_idx(got[b]) == ref, (lam, nb, kb)


def test_prefilter_large_counts_exact():
    Na = 46340
    n = np.array([Na, Na, 30001, 12345])
    k = np.array([Na // 3, Na - 1, 9999, 6172])
    for lam in (1.5, 2, 3, 1.001):
        got = np.asarray(prefilter_candidates(n, k, lam, Na))
        for b in range(len(n)):
            c = min(int(n[b]), math.ceil(Fraction(str(lam)) * int(k[b])))
            assert got[b].sum() == c
            idx = np.nonzero(got[b])[0]
            np.testing.assert_array_equal(idx, (np.arange(c, dtype=np.int64) * int(n[b])) // c)
    with pytest.raises(ValueError):
        prefilter_candidates(n, k, 2.0, 46341)
    with pytest.raises(ValueError):
        prefilter_candidates(n, k, -1.0, 10)


def test_frame_candidates():
    Na = 50
    cases = [(50, 17), (50, 50), (33, 5), (7, 0), (1, 1), (49, 48)]
    n = np.array([c[0] for c in cases])
    k = np.array([c[1] for c in cases])
    cand = frame_candidates(n, k, Na)
    keep = np.asarray(select_topk(jnp.zeros((len(cases), Na)), cand, k, Na, valid=prefix_mask(n, Na)))
    for b, (nb, kb) in enumerate(cases):
        ref = [(i * nb) // kb for i in range(kb)]
        assert keep_idx(np.asarray(cand)[b]) == ref
        assert keep_idx(keep[b]) == ref


def test_select_topk_vs_numpy_and_ties():
    rng = np.random.default_rng(3)
    B, Na = 5, 30
    n = np.array([30, 21, 10, 1, 30])
    k = np.array([12, 5, 10, 1, 0])
    valid = prefix_mask(n, Na)
    # Few distinct values -> many ties; garbage at invalid slots.
    scores = rng.integers(0, 4, size=(B, Na)).astype(np.float32)
    scores[~valid] = np.where(rng.random((~valid).sum()) < 0.5, np.nan, 1e9)
    cand = valid & (rng.random((B, Na)) < 0.8)
    cand[2] = valid[2]
    keep = np.asarray(select_topk(scores, cand, k, 12, valid=valid))
    for b in range(B):
        assert keep[b].sum() == k[b]
        assert keep_idx(keep[b]) == np_topk(scores[b], np.nonzero(cand[b])[0].tolist(), k[b])


def test_select_topk_ties_earlier_slot():
    s = np.array([[1.0, 3.0, 3.0, 2.0, 3.0, -0.0, 0.0, 0.0]])
    keep = np.asarray(select_topk(s, np.ones_like(s, bool), np.array([2]), 8))
    assert keep_idx(keep[0]) == [1, 2]
    keep = np.asarray(select_topk(s * 0, np.ones_like(s, bool), np.array([3]), 8))
    assert keep_idx(keep[0]) == [0, 1, 2]  # all equal (incl. signed zeros) -> first slots
    s2 = np.array([[0.0, -0.0, 5.0, -0.0, 0.0]])
    keep = np.asarray(select_topk(s2, np.ones_like(s2, bool), np.array([3]), 5))
    assert keep_idx(keep[0]) == [0, 1, 2]


def test_select_topk_fill_from_non_candidates():
    s = np.array([[5.0, 1.0, 4.0, 3.0, 9.0, 8.0]])
    cand = np.array([[False, True, False, True, False, False]])
    valid = np.array([[True, True, True, True, True, False]])
    keep = np.asarray(select_topk(s, cand, np.array([4]), 6, valid=valid))
    assert keep_idx(keep[0]) == [0, 1, 3, 4]  # candidates 1, 3, then best valid non-candidates (9, 5)
    keep = np.asarray(select_topk(s, cand, np.array([6]), 6, valid=valid))
    assert keep[0].sum() == 5 and not keep[0, 5]  # never an invalid slot


def test_headrouter_pipeline_prefilter():
    """Scores -> prefilter -> select: kept = top-k of importance among the prefilter candidates."""
    rng = np.random.default_rng(4)
    B, Na = 3, 40
    n = np.array([40, 33, 12])
    k = np.array([14, 9, 6])
    scores = rng.random((B, Na)).astype(np.float32)
    cand = prefilter_candidates(n, k, 2.0, Na)
    keep = np.asarray(select_topk(scores, cand, k, 14, valid=prefix_mask(n, Na)))
    for b in range(B):
        c = min(n[b], 2 * k[b])
        cidx = sorted({(i * n[b]) // c for i in range(c)})
        assert keep_idx(keep[b]) == np_topk(scores[b], cidx, k[b])


# --------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------


def test_random_scores_reproducible():
    am = prefix_mask([9, 4], 9)
    a = np.asarray(random_scores(jax.random.PRNGKey(7), am))
    b = np.asarray(random_scores(jax.random.PRNGKey(7), am))
    c = np.asarray(random_scores(jax.random.PRNGKey(8), am))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[am], c[am])
    assert np.all(np.isneginf(a[~am])) and np.all((a[am] >= 0) & (a[am] < 1))
    keep = np.asarray(select_topk(a, am, np.array([5, 2]), 5, valid=am))
    np.testing.assert_array_equal(keep.sum(-1), [5, 2])
    assert not keep[~am].any()


def test_fastv_scores_vs_numpy():
    rng = np.random.default_rng(5)
    B, L, Hq, Hkv, D, Na = 2, 20, 8, 2, 8, 6
    q = rng.normal(size=(B, Hq, D)).astype(np.float32)
    k = rng.normal(size=(B, L, Hkv, D)).astype(np.float32)
    lengths = np.array([20, 13])
    km = prefix_mask(lengths, L)
    k = with_garbage(k, km, rng)
    audio_pos = np.array([[3, 4, 5, 6, 7, 8], [2, 3, 4, 5, -1, -1]])
    got = np.asarray(fastv_scores(jnp.asarray(q), jnp.asarray(k), km, audio_pos))
    for b in range(B):
        ref = np.zeros(L)
        for h in range(Hq):
            logits = k[b, : lengths[b], h // (Hq // Hkv)].astype(np.float64) @ q[b, h] / np.sqrt(D)
            a = np.exp(logits - logits.max())
            ref[: lengths[b]] += a / a.sum() / Hq
        for j in range(Na):
            if audio_pos[b, j] >= 0:
                np.testing.assert_allclose(got[b, j], ref[audio_pos[b, j]], rtol=2e-5)
            else:
                assert np.isneginf(got[b, j])


def np_dart(l1a, l1t, ha, ht, n, nt, k, pa=4, pt=4):
    """Transcription of AudioMarathon's get_retained_audio_token plus the documented choices
    (pivot order = descending L1, exact-k truncation / round-robin fill)."""

    def cos(x, y):
        return float(x @ y) / (max(np.linalg.norm(x), 1e-8) * max(np.linalg.norm(y), 1e-8))

    k = min(k, n)
    audio_piv = sorted(range(n), key=lambda j: (-l1a[j], j))[:pa]
    text_piv = sorted(range(nt), key=lambda j: (-l1t[j], j))[:pt]
    pivots = [ha[j] for j in audio_piv] + [ht[j] for j in text_piv]
    seq = list(audio_piv)
    valid = [j for j in range(n) if j not in audio_piv]
    topk = k // (pa + pt)  # int(Na (1 - r) / (4 + 4))
    for pv in pivots:
        ranked = sorted(valid, key=lambda j: (cos(pv, ha[j]), j))  # least similar first
        picks = ranked[:topk]
        seq += picks
        valid = [j for j in valid if j not in picks]
    step = 0
    while len(seq) < k and valid:
        pv = pivots[step % len(pivots)]
        best = min(valid, key=lambda j: (cos(pv, ha[j]), j))
        seq.append(best)
        valid.remove(best)
        step += 1
    return sorted(seq[:k])


@pytest.fixture(scope="module")
def dart_case():
    rng = np.random.default_rng(6)
    B, Na, T, Hkv, D, Hd = 5, 37, 7, 2, 4, 6
    n = np.array([37, 30, 20, 3, 37])
    nt = np.array([7, 5, 2, 7, 0])
    am, tm = prefix_mask(n, Na), prefix_mask(nt, T)
    ka = with_garbage(rng.normal(size=(B, Na, Hkv, D)), am, rng)
    kt = with_garbage(rng.normal(size=(B, T, Hkv, D)), tm, rng)
    ha = with_garbage(rng.normal(size=(B, Na, Hd)), am, rng)
    ht = with_garbage(rng.normal(size=(B, T, Hd)), tm, rng)
    return dart_select, (ka, kt, ha, ht, am, tm), n, nt


@pytest.mark.parametrize(
    "ks", [[12, 11, 9, 2, 20], [16, 21, 20, 3, 37], [0, 1, 3, 1, 8], [37, 30, 13, 0, 31], [20, 28, 4, 3, 36]]
)
def test_dart_select(dart_case, ks):
    fn, (ka, kt, ha, ht, am, tm), n, nt = dart_case
    k = np.array(ks)
    keep = np.asarray(fn(ka, kt, ha, ht, am, tm, k))
    l1a = np.abs(np.nan_to_num(ka)).reshape(ka.shape[0], ka.shape[1], -1).sum(-1)
    l1t = np.abs(np.nan_to_num(kt)).reshape(kt.shape[0], kt.shape[1], -1).sum(-1)
    for b in range(len(n)):
        assert keep[b].sum() == min(k[b], n[b])  # exactly k audio tokens
        assert not keep[b, n[b] :].any()  # only valid audio slots (text is never in the output)
        ref = np_dart(l1a[b], l1t[b], ha[b].astype(np.float64), ht[b].astype(np.float64), n[b], nt[b], k[b])
        assert keep_idx(keep[b]) == ref, b
        pivots = sorted(range(n[b]), key=lambda j: (-l1a[b, j], j))[: min(4, k[b])]
        assert keep[b, pivots].all()  # audio pivots are kept (AudioMarathon keeps them too)


# --------------------------------------------------------------------------------------------------
# jit: traced num_audio / k never recompile
# --------------------------------------------------------------------------------------------------


def test_no_recompile_when_counts_change():
    traces = {"n": 0}
    Na, T, Hq, Hkv, D = 16, 4, 4, 2, 8
    rng = np.random.default_rng(8)
    q = jnp.asarray(rng.normal(size=(2, T, Hq, D)), jnp.float32)
    ka = jnp.asarray(rng.normal(size=(2, Na, Hkv, D)), jnp.float32)
    w = jnp.full((Hq,), 1.0 / Hq)

    @jax.jit
    def step(num_audio, num_text, k, key):
        traces["n"] += 1
        am = jnp.arange(Na)[None] < num_audio[:, None]
        tm = jnp.arange(T)[None] < num_text[:, None]
        router = RouterArrays(w, w, jnp.array([0.0, 0.5, 1.0]), jnp.float32(0.3))
        scores, spr, alpha, _ = headrouter_scores(q, ka, tm, am, router)
        cand = prefilter_candidates(num_audio, k, 2.0, Na)
        keep = select_topk(scores, cand, k, 8, valid=am)
        frame = select_topk(jnp.zeros((2, Na)), frame_candidates(num_audio, k, Na), k, 8)
        rand = select_topk(random_scores(key, am), am, k, 8, valid=am)
        dart = dart_select(ka, ka[:, :T], ka.reshape(2, Na, -1), q[:, :, :2].reshape(2, T, -1), am, tm, k)
        return keep, frame, rand, dart, spr, alpha

    key = jax.random.PRNGKey(0)
    for na, nt, k in [([16, 9], [4, 2], [8, 4]), ([5, 16], [1, 4], [2, 8]), ([1, 12], [3, 3], [1, 0])]:
        outs = step(np.array(na), np.array(nt), np.array(k), key)
        for keep in outs[:4]:
            np.testing.assert_array_equal(np.asarray(keep).sum(-1), k)
    assert traces["n"] == 1


# --------------------------------------------------------------------------------------------------
# Router and calibration
# --------------------------------------------------------------------------------------------------


def make_router_dict(**over):
    d = {
        "model": "Qwen/Qwen2.5-Omni-3B",
        "prune_layer": 2,
        "num_heads": 4,
        "w_sem": [0.1, 0.2, 0.3, 0.4],
        "w_aco": [0.0, 0.5, 0.5, 0.0],
        "mu": {"semantic": 0.05, "uniform": 0.08, "acoustic": 0.11},
        "sigma": 0.02,
        "prefilter": 2.0,
    }
    d.update(over)
    return d


def test_router_roundtrip(tmp_path):
    r = Router.load(make_router_dict())
    path = tmp_path / "router.json"
    r.save(path)
    assert json.loads(path.read_text()) == make_router_dict()
    r2 = Router.load(path)
    assert r2 == r and hash(r2) == hash(r)
    assert r2.mu["acoustic"] == 0.11 and dict(r2.mu) == make_router_dict()["mu"]
    assert r2.mu_array == (0.05, 0.08, 0.11)
    assert Router.load(make_router_dict(prefilter=None)).prefilter is None
    assert Router.load(make_router_dict(prefilter=float("inf"))).prefilter is None
    u = Router.uniform("m", 2, 8)
    assert u.w_sem == u.w_aco == (0.125,) * 8 and u.prefilter == 2.0
    Router.load(u.to_dict())
    assert list(tmp_path.iterdir()) == [path]  # atomic save leaves no temporary file


@pytest.mark.parametrize(
    "over,match",
    [
        ({"w_sem": [0.1, 0.2, 0.3]}, "w_sem has 3 weights"),
        ({"w_aco": [0.1, -0.2, 0.3, 0.1]}, "negative"),
        ({"w_aco": [0, 0, 0, 0]}, "sum to 0"),
        ({"sigma": 0.0}, "sigma must be > 0"),
        ({"sigma": -1}, "sigma must be > 0"),
        ({"sigma": float("nan")}, "sigma must be finite"),
        ({"mu": {"semantic": 0.1, "acoustic": 0.2}}, "missing \\['uniform'\\]"),
        ({"mu": {"semantic": 0.1, "uniform": 0.1, "acoustic": 0.2, "x": 1}}, "unexpected \\['x'\\]"),
        ({"prefilter": 0.5}, "prefilter"),
        ({"prefilter": "2"}, "prefilter"),
        ({"num_heads": 0}, "num_heads"),
        ({"prune_layer": 0}, "prune_layer"),
        ({"prune_layer": True}, "prune_layer"),
        ({"model": ""}, "model"),
        ({"extra_key": 1}, "unexpected \\['extra_key'\\]"),
    ],
)
def test_router_refusals(over, match):
    with pytest.raises(RouterError, match=match):
        Router.load(make_router_dict(**over))


def test_router_missing_key_and_bad_file(tmp_path):
    d = make_router_dict()
    del d["sigma"]
    with pytest.raises(RouterError, match="missing \\['sigma'\\]"):
        Router.load(d)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RouterError, match="not valid JSON"):
        Router.load(bad)


def test_ablations():
    assert set(HEADROUTER_METHODS) == {
        "headrouter",
        "hard",
        "no_router",
        "no_prefilter",
        "semantic",
        "acoustic",
    }
    r = Router.load(make_router_dict())
    assert r.prefilter_for("headrouter") == 2.0 and r.prefilter_for("no_prefilter") is None
    assert [r.routing_for(m) for m in ("headrouter", "hard", "no_router", "semantic", "acoustic")] == [
        "soft",
        "hard",
        "uniform",
        "semantic",
        "acoustic",
    ]
    for name in HEADROUTER_METHODS:
        assert r.routing_for(name) in headrouter.ROUTING_MODES
    with pytest.raises(RouterError, match="not HeadRouter"):
        r.routing_for("fastv")


def test_calibrate_centers_hand_values():
    mu, sigma = calibrate_centers({"semantic": [1.0, 3.0], "acoustic": [10.0, 14.0], "mixed": [5.0]})
    assert mu == {"semantic": 2.0, "uniform": 5.0, "acoustic": 12.0}
    # SS = (1 + 1) + (4 + 4) + 0 = 10, N - C = 5 - 3 = 2
    assert sigma == pytest.approx(math.sqrt(10 / 2))
    mu, sigma = calibrate_centers({"semantic": [1.0, 3.0], "acoustic": [10.0, 14.0]})
    assert mu["uniform"] == 7.0 and sigma == pytest.approx(math.sqrt(10 / 2))
    mu, sigma = calibrate_centers({"semantic": [0.2], "acoustic": [0.6], "mixed": []})
    assert mu["uniform"] == pytest.approx(0.4) and sigma == pytest.approx(0.04)  # floor 0.1 * 0.4
    _, sigma = calibrate_centers({"semantic": [0.3, 0.3], "acoustic": [0.3]})
    assert sigma == 1e-6
    with pytest.raises(RouterError, match="acoustic"):
        calibrate_centers({"semantic": [0.1]})
    with pytest.raises(RouterError, match="unknown"):
        calibrate_centers({"semantic": [0.1], "acoustic": [0.2], "speech": [0.3]})


def test_profile_from_ablation():
    np.testing.assert_allclose(profile_from_ablation([1.0, -2.0, 3.0, 0.0]), [0.25, 0.0, 0.75, 0.0])
    np.testing.assert_allclose(profile_from_ablation([-1.0, -2.0, 0.0, 0.0]), [0.25] * 4)
    with pytest.raises(RouterError):
        profile_from_ablation([np.nan, 1.0])
    r = Router.load(make_router_dict(w_sem=list(profile_from_ablation([1.0, -1, 1, 2]))))
    assert sum(r.w_sem) == pytest.approx(1.0)
