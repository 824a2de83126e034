"""Clustering on synthetic embeddings whose clusters are known exactly."""

from __future__ import annotations

import numpy as np
from vadpack.speakers.cluster import ClusterParams, cluster_windows, first_appearance_order


def voices(n_per: list[int], spread: float, seed: int = 0, dim: int = 64, shared: float = 0.0) -> tuple:
    """Unit embeddings around one random direction per voice (plus a ``shared`` common component,
    as a recording's channel adds), in runs: voice 0's windows, then voice 1's, ...

    Returns:
        (embeddings, true labels)
    """
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim)
    centres = rng.standard_normal((len(n_per), dim))
    rows, labels = [], []
    for k, n in enumerate(n_per):
        x = centres[k] + shared * common + spread * rng.standard_normal((n, dim))
        rows.append(x)
        labels += [k] * n
    emb = np.concatenate(rows)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), np.array(labels)


def test_three_clear_voices_are_found_with_labels_in_order_of_appearance() -> None:
    emb, truth = voices([12, 8, 10], spread=0.3)
    labels = cluster_windows(emb, ClusterParams())
    assert labels.tolist() == truth.tolist()


def test_a_shared_channel_component_does_not_hide_the_voices() -> None:
    # Raw cosine similarity between voices is high here (as on meeting audio); centring removes it.
    emb, truth = voices([15, 15], spread=0.25, shared=3.0, seed=1)
    assert float(emb[:15].mean(0) @ emb[15:].mean(0)) > 0.8
    params = ClusterParams(merge_similarity=1.01)
    assert cluster_windows(emb, params).tolist() == truth.tolist()


def test_one_voice_stays_one_speaker() -> None:
    emb, _ = voices([40], spread=0.2, seed=2)
    assert set(cluster_windows(emb, ClusterParams()).tolist()) == {0}


def test_the_given_count_is_used_and_bounds_are_applied() -> None:
    emb, truth = voices([10, 10, 10, 10], spread=0.3, seed=3)
    assert len(set(cluster_windows(emb, ClusterParams(num_speakers=2)).tolist())) == 2
    assert len(set(cluster_windows(emb, ClusterParams(max_speakers=3)).tolist())) == 3
    one, _ = voices([30], spread=0.2, seed=4)
    assert len(set(cluster_windows(one, ClusterParams(min_speakers=2)).tolist())) == 2
    assert cluster_windows(emb, ClusterParams(num_speakers=4)).tolist() == truth.tolist()


def test_deterministic_and_edge_cases() -> None:
    emb, _ = voices([9, 7], spread=0.4, seed=5)
    first = cluster_windows(emb, ClusterParams())
    assert cluster_windows(emb.copy(), ClusterParams()).tolist() == first.tolist()
    assert cluster_windows(emb[:1], ClusterParams()).tolist() == [0]
    assert cluster_windows(emb[:0], ClusterParams()).tolist() == []
    same = np.tile(emb[:1], (5, 1))  # identical windows (digital silence) centre to zero rows
    assert cluster_windows(same, ClusterParams()).tolist() == [0] * 5


def test_a_subsample_clusters_a_long_recording_and_every_window_gets_its_voice() -> None:
    emb, truth = voices([300, 200], spread=0.3, seed=6)
    labels = cluster_windows(emb, ClusterParams(max_cluster_windows=50))
    assert labels.tolist() == truth.tolist()


def test_first_appearance_order() -> None:
    assert first_appearance_order(np.array([5, 5, 2, 9, 2, 5])).tolist() == [0, 0, 1, 2, 1, 0]


def test_a_lone_stray_window_is_not_a_speaker_of_its_own() -> None:
    emb, _ = voices([12], spread=0.2, seed=7)
    stray, _ = voices([1], spread=0.0, seed=8)
    labels = cluster_windows(np.concatenate([emb[:6], stray, emb[6:]]), ClusterParams(merge_similarity=1.01))
    assert labels.tolist() == [0] * 13
    kept = cluster_windows(np.concatenate([emb[:6], stray, emb[6:]]),
                           ClusterParams(merge_similarity=1.01, min_cluster_windows=1))
    assert kept.tolist() == [0] * 6 + [1] + [0] * 6
