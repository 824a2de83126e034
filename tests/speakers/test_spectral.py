"""Spectral clustering (speakers/spectral.py) on synthetic embeddings whose clusters are known exactly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from vadpack.speakers.spectral import SpectralParams, eigengap_count, kmeans, laplacian, spectral_windows


def params(**options: object) -> SpectralParams:
    """The default spectral options with some of the shared ones (``ClusterParams``) changed."""
    return SpectralParams(replace(SpectralParams().cluster, **options))


def voices(sizes: list[int], dim: int = 192, noise: float = 0.35, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised embeddings: one random direction per voice plus isotropic noise; windows of the
    voices interleaved in turns of 5, as in a conversation. Returns (embeddings, true labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    left = list(sizes)
    truth: list[int] = []
    while any(left):
        for v in range(len(sizes)):
            take = min(5, left[v])
            truth += [v] * take
            left[v] -= take
    labels = np.array(truth)
    x = centres[labels] + noise * rng.standard_normal((len(labels), dim)) / np.sqrt(dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """The two labellings group the windows identically (names aside)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_the_eigengap_finds_the_number_of_voices(k: int) -> None:
    emb, truth = voices([40] * k, seed=k)
    labels = spectral_windows(emb, params())
    assert len(set(labels.tolist())) == k
    assert same_partition(labels, truth)


def test_unequal_voices_are_all_found() -> None:
    emb, truth = voices([120, 30, 12], seed=7)
    labels = spectral_windows(emb, params())
    assert same_partition(labels, truth)


def test_num_speakers_is_the_count_exactly() -> None:
    emb, truth = voices([30, 30, 30], seed=3)
    assert len(set(spectral_windows(emb, params(num_speakers=2)).tolist())) == 2
    four = spectral_windows(emb, params(num_speakers=4))
    assert len(set(four.tolist())) == 4
    assert same_partition(spectral_windows(emb, params(num_speakers=3)), truth)


def test_min_and_max_speakers_bound_the_estimate() -> None:
    emb, _ = voices([30] * 4, seed=4)
    assert len(set(spectral_windows(emb, params(max_speakers=2)).tolist())) == 2
    assert len(set(spectral_windows(emb, params(max_speakers=1)).tolist())) == 1
    assert 6 <= len(set(spectral_windows(emb, params(min_speakers=6)).tolist())) <= 8
    assert len(set(spectral_windows(emb, params(min_speakers=6, max_speakers=6)).tolist())) == 6
    one, _ = voices([60], seed=5)
    assert len(set(spectral_windows(one, params(min_speakers=2)).tolist())) >= 2


def test_labels_are_in_order_of_first_appearance_and_deterministic() -> None:
    emb, _ = voices([25, 25, 25], seed=11)
    labels = spectral_windows(emb, params())
    firsts = [int(np.argmax(labels == c)) for c in range(labels.max() + 1)]
    assert firsts == sorted(firsts) and labels[0] == 0
    assert np.array_equal(labels, spectral_windows(emb.copy(), params()))


def test_few_windows_are_one_speaker_and_empty_is_empty() -> None:
    emb, _ = voices([4, 4], seed=1)
    assert spectral_windows(emb, params()).tolist() == [0] * 8
    assert spectral_windows(np.zeros((0, 192)), params()).shape == (0,)


def test_a_long_recording_is_clustered_on_a_subsample_and_every_window_labelled() -> None:
    emb, truth = voices([150, 150], seed=2)
    labels = spectral_windows(emb, params(max_cluster_windows=60))
    assert labels.shape == truth.shape and same_partition(labels, truth)


def test_laplacian_and_eigengap_by_hand() -> None:
    # Two disconnected pairs: L has eigenvalues 0, 0, 2, 2; the largest gap is after the second.
    a = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=float)
    lap = laplacian(a)
    assert np.array_equal(lap, np.array([[1, -1, 0, 0], [-1, 1, 0, 0], [0, 0, 1, -1], [0, 0, -1, 1]], dtype=float))
    values = np.linalg.eigvalsh(lap)
    assert np.allclose(values, [0, 0, 2, 2])
    assert eigengap_count(values, 1, 3) == 2
    assert eigengap_count(np.array([0.0, 1.0, 1.1, 5.0]), 1, 3) == 3
    assert eigengap_count(np.array([0.0, 1.0, 1.1, 5.0]), 1, 2) == 1


def test_kmeans_separates_two_blobs_by_hand() -> None:
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])
    labels = kmeans(pts, 2)
    assert len(set(labels[:3].tolist())) == 1 and len(set(labels[3:].tolist())) == 1 and labels[0] != labels[3]
    assert kmeans(pts, 1).tolist() == [0] * 6
