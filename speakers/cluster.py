"""Speaker labels for the windows of one recording: clustering, with the count estimated or given.

Never across recordings: a label means "the same voice within this recording" only.

1. Subtract the recording's mean embedding and renormalise. The mean carries what all windows
   share (channel, room, codec, language); on meeting and phone audio raw embeddings of different
   speakers are nearly as similar as those of one speaker, and the mean removed, they separate.
2. Average-linkage agglomerative clustering on cosine distance, cut at ``threshold`` (or at exactly
   ``num_speakers`` clusters when the count is given).
3. Fold clusters of fewer than ``min_cluster_windows`` windows into the nearest larger one: one
   stray window is too little evidence of another voice.
4. Merge clusters whose raw mean embeddings are at least ``merge_similarity`` alike: after the
   mean is removed even one voice splits in two (its halves point in opposite directions), and
   this guard is what keeps a one-speaker recording at one speaker.
5. Clip the count to [min_speakers, max_speakers] by cutting the same tree again.
6. Name clusters 0, 1, ... in order of first appearance, so labels are stable from run to run.

A recording with more than ``max_cluster_windows`` windows is clustered on an even subsample, and
every window then takes the cluster whose centroid is nearest. Deterministic: no random state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from vadpack.speakers.config import MIN_CLUSTER_WINDOWS, SpeakersConfig

_DEFAULTS = SpeakersConfig()  # the one source of the defaults below


@dataclass(frozen=True, slots=True)
class ClusterParams:
    """The clustering options of :class:`speakers.config.SpeakersConfig` (see there), with its defaults."""

    threshold: float = _DEFAULTS.threshold
    merge_similarity: float = _DEFAULTS.merge_similarity
    num_speakers: int | None = _DEFAULTS.num_speakers
    min_speakers: int = _DEFAULTS.min_speakers
    max_speakers: int = _DEFAULTS.max_speakers
    max_cluster_windows: int = _DEFAULTS.max_cluster_windows
    min_cluster_windows: int = MIN_CLUSTER_WINDOWS["ahc"]  # the config's default (None) resolved for AHC

    @classmethod
    def of(cls, cfg: SpeakersConfig) -> ClusterParams:
        """The clustering options of a speakers config."""
        values = {f.name: getattr(cfg, f.name) for f in fields(cls)}
        return cls(**{**values, "min_cluster_windows": cfg.resolved_min_cluster_windows})


def cluster_windows(embeddings: np.ndarray, params: ClusterParams) -> np.ndarray:
    """One label per window (0, 1, ... in order of first appearance) for one recording.

    Args:
        embeddings: (n_windows, dim) L2-normalised embeddings in time order.
        params: the clustering options.

    Returns:
        int64 labels, shape (n_windows,).
    """
    n = len(embeddings)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    emb = np.asarray(embeddings, dtype=np.float64)
    pick = _subsample(n, params.max_cluster_windows)
    labels = _cluster_all(emb[pick], params)
    if len(pick) < n:
        labels = nearest_centroid(center(emb), center(emb)[pick], labels)
    return first_appearance_order(labels)


def _cluster_all(emb: np.ndarray, params: ClusterParams) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(cosine_distances(center(emb)), method="average")
    n = len(emb)
    if params.num_speakers is not None:
        return fcluster(tree, min(params.num_speakers, n), criterion="maxclust") - 1
    labels = fcluster(tree, params.threshold, criterion="distance") - 1
    labels = fold_small(center(emb), labels, params.min_cluster_windows)
    labels = merge_similar(emb, labels, params.merge_similarity)
    k = len(np.unique(labels))
    lo, hi = min(params.min_speakers, n), min(params.max_speakers, n)
    if not lo <= k <= hi:
        labels = fcluster(tree, min(max(k, lo), hi), criterion="maxclust") - 1
    return labels


def center(emb: np.ndarray) -> np.ndarray:
    """Embeddings minus their mean, renormalised (a zero row stays zero)."""
    x = emb - emb.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """The condensed cosine distance matrix of L2-normalised rows, as scipy's ``linkage`` takes it.

    Computed here rather than by scipy's ``cosine`` metric, which gives NaN for a zero row (a
    recording whose windows are all identical, such as digital silence, centres to zeros); here a
    zero row is at distance 1 (unrelated) from everything.
    """
    from scipy.spatial.distance import squareform

    d = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    return squareform(d, checks=False)


def centroids(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cluster ids, their L2-normalised mean embeddings)."""
    ids = np.unique(labels)
    means = np.stack([emb[labels == c].mean(axis=0) for c in ids])
    return ids, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def merge_similar(emb: np.ndarray, labels: np.ndarray, min_similarity: float) -> np.ndarray:
    """Merge the most similar pair of clusters while their raw centroids are >= ``min_similarity`` alike."""
    labels = labels.copy()
    while len(np.unique(labels)) > 1:
        ids, cents = centroids(emb, labels)
        sim = cents @ cents.T
        np.fill_diagonal(sim, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] < min_similarity:
            break
        labels[labels == ids[j]] = ids[i]
    return labels


def fold_small(emb: np.ndarray, labels: np.ndarray, min_windows: int) -> np.ndarray:
    """Give the windows of clusters smaller than ``min_windows`` the nearest larger cluster.

    When no cluster is large enough the largest one (the first on a tie) is kept.
    """
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids[counts >= min_windows]
    if len(keep) == 0:
        keep = ids[[int(np.argmax(counts))]]
    small = ~np.isin(labels, keep)
    if not small.any():
        return labels
    kept = np.isin(labels, keep)
    labels = labels.copy()
    labels[small] = nearest_centroid(emb[small], emb[kept], labels[kept])
    return labels


def nearest_centroid(emb: np.ndarray, sample_emb: np.ndarray, sample_labels: np.ndarray) -> np.ndarray:
    """The label of the nearest (cosine) centroid of the labelled sample, for every row of ``emb``."""
    ids, cents = centroids(sample_emb, sample_labels)
    return ids[np.argmax(emb @ cents.T, axis=1)]


def first_appearance_order(labels: np.ndarray) -> np.ndarray:
    """Relabel so the first label seen is 0, the next new one 1, and so on."""
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def _subsample(n: int, cap: int) -> np.ndarray:
    """Indices of at most ``cap`` windows spread evenly over the recording (all of them if n <= cap)."""
    if n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))
