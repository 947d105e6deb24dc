"""k-means against scikit-learn's KMeans on the same points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.cluster import KMeans

from handler.color_space import srgb_to_lab
from handler.kmeans import kmeans

INERTIA_RELATIVE_TOLERANCE = 0.01
CENTER_TOLERANCE = 0.5


def _inertia(points: NDArray[np.float64], centers: NDArray[np.float64], labels: NDArray[np.int64]) -> float:
    return float(np.sum((points - centers[labels]) ** 2))


def _max_matched_center_distance(ours: NDArray[np.float64], theirs: NDArray[np.float64]) -> float:
    """Largest center distance under the best one-to-one matching (brute force, k <= 6)."""
    best = np.inf
    for order in itertools.permutations(range(theirs.shape[0])):
        best = min(best, float(np.max(np.linalg.norm(ours - theirs[list(order)], axis=1))))
    return best


def _blobs(seed: int) -> NDArray[np.float64]:
    """Five Lab-like Gaussian blobs of different sizes, 3000 points."""
    rng = np.random.default_rng(seed)
    means = np.array(
        [[20.0, 5.0, -30.0], [50.0, 60.0, 40.0], [80.0, -10.0, 60.0], [95.0, 0.0, 5.0], [40.0, -40.0, 10.0]]
    )
    sizes = [1000, 800, 600, 400, 200]
    return np.concatenate([rng.normal(mean, 4.0, (size, 3)) for mean, size in zip(means, sizes, strict=True)])


def _photo_like_pixels() -> NDArray[np.float64]:
    """Lab values of a noisy three-color striped image: red, navy and beige, 60/25/15."""
    rng = np.random.default_rng(3)
    stripe = np.array([[200, 16, 46]] * 12 + [[32, 42, 68]] * 5 + [[232, 220, 196]] * 3, dtype=np.float64)
    image = np.tile(stripe[None, :, :], (100, 10, 1)) + rng.normal(0.0, 6.0, (100, 200, 3))
    return srgb_to_lab(np.clip(image, 0, 255).astype(np.uint8).reshape(-1, 3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_blobs_match_sklearn(seed: int) -> None:
    points = _blobs(seed)
    reference = KMeans(n_clusters=5, n_init=10, random_state=seed).fit(points)

    centers, labels = kmeans(points, 5, seed=seed)

    reference_inertia = float(reference.inertia_)
    assert _inertia(points, centers, labels) <= reference_inertia * (1.0 + INERTIA_RELATIVE_TOLERANCE)
    assert _max_matched_center_distance(centers, reference.cluster_centers_) < CENTER_TOLERANCE


def test_kmeans_photo_pixels_match_sklearn() -> None:
    points = _photo_like_pixels()
    reference = KMeans(n_clusters=3, n_init=10, random_state=0).fit(points)

    centers, labels = kmeans(points, 3, seed=0)

    assert _inertia(points, centers, labels) <= float(reference.inertia_) * (1.0 + INERTIA_RELATIVE_TOLERANCE)
    assert _max_matched_center_distance(centers, reference.cluster_centers_) < CENTER_TOLERANCE


def test_kmeans_eight_clusters_inertia_close_to_sklearn() -> None:
    # GIVEN more clusters than the data has, the case product_colors runs every time
    points = _photo_like_pixels()
    reference = KMeans(n_clusters=8, n_init=10, random_state=0).fit(points)

    # WHEN
    centers, labels = kmeans(points, 8, seed=0)

    # THEN local optima differ, so only the inertia is compared, with a looser bound
    assert centers.shape == (8, 3)
    assert _inertia(points, centers, labels) <= float(reference.inertia_) * 1.05


def test_kmeans_labels_are_nearest_center() -> None:
    points = _blobs(4)

    centers, labels = kmeans(points, 5, seed=0)

    distances = np.linalg.norm(points[:, None, :] - centers[None, :, :], axis=2)
    np.testing.assert_array_equal(labels, np.argmin(distances, axis=1))


def test_kmeans_centers_are_cluster_means() -> None:
    points = _blobs(5)

    centers, labels = kmeans(points, 5, seed=0)

    for cluster in range(5):
        np.testing.assert_allclose(centers[cluster], points[labels == cluster].mean(axis=0), atol=1e-3)


def test_kmeans_same_seed_same_result() -> None:
    points = _blobs(6)

    first_centers, first_labels = kmeans(points, 8, seed=11)
    second_centers, second_labels = kmeans(points, 8, seed=11)

    np.testing.assert_array_equal(first_centers, second_centers)
    np.testing.assert_array_equal(first_labels, second_labels)


def test_kmeans_k_above_distinct_points_returns_each_point() -> None:
    distinct = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    points = np.repeat(distinct, [50, 30, 20], axis=0)

    centers, labels = kmeans(points, 8, seed=0)

    assert centers.shape == (3, 3)
    assert sorted(map(tuple, centers)) == sorted(map(tuple, distinct))
    np.testing.assert_array_equal(centers[labels], points)


def test_kmeans_single_distinct_point_one_center() -> None:
    points = np.full((40, 3), 7.5)

    centers, labels = kmeans(points, 4, seed=0)

    np.testing.assert_array_equal(centers, [[7.5, 7.5, 7.5]])
    assert np.all(labels == 0)


def test_kmeans_k_one_gives_mean() -> None:
    points = _blobs(7)

    centers, labels = kmeans(points, 1, seed=0)

    np.testing.assert_allclose(centers[0], points.mean(axis=0))
    assert np.all(labels == 0)


@pytest.mark.parametrize(
    ("points", "k"),
    [
        (np.empty((0, 3)), 2),
        (np.zeros(5), 2),
        (np.array([[0.0, np.nan, 0.0]]), 1),
        (np.zeros((4, 3)), 0),
    ],
    ids=["empty", "one-dimensional", "nan", "k-zero"],
)
def test_kmeans_invalid_input_raises(points: NDArray[np.float64], k: int) -> None:
    with pytest.raises(ValueError, match="expected"):
        kmeans(points, k, seed=0)
