"""k-means clustering in numpy: k-means++ seeding, then Lloyd iterations, reproducible by seed.

``colors.product_colors`` clusters product pixels with it. scikit-learn is only a dev
dependency, and tests/unit/test_kmeans.py compares this implementation with its KMeans.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def kmeans(
    points: NDArray[np.floating], k: int, *, seed: int = 0, max_iter: int = 100, tol: float = 1e-4
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Cluster points with k-means++ seeding and Lloyd iterations.

    Args:
        points: (N, D) float, finite, N >= 1.
        k: clusters requested, >= 1.
        seed: seeds numpy's Generator; the same points and seed give the same result.
        max_iter: most Lloyd iterations.
        tol: stop when the squared center shift, summed over centers, falls below
            tol times the mean per-feature variance of points (the rule scikit-learn uses).
    Returns:
        centers (K, D) float64 and labels (N,) int64 in [0, K), where K = min(k, number of
        distinct points): with fewer distinct points than k, each distinct point is a center.
    Raises:
        ValueError: points is not a non-empty finite (N, D) array, or k < 1.
    """
    data: NDArray[np.float64] = np.asarray(points, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0 or not np.all(np.isfinite(data)):
        raise ValueError(f"expected non-empty finite (N, D) points, got shape {data.shape}")
    if k < 1:
        raise ValueError(f"expected k >= 1, got {k}")

    rng = np.random.default_rng(seed)
    centers = _seed_centers(data, k, rng)
    shift_limit = tol * float(np.mean(np.var(data, axis=0)))
    for _ in range(max_iter):
        labels, sq_dist = _assign(data, centers)
        new_centers = _update_centers(data, labels, sq_dist, centers)
        shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        if shift <= shift_limit:
            break
    labels, _ = _assign(data, centers)
    return centers, labels


def _squared_distances(points: NDArray[np.float64], centers: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, D) points, (K, D) centers -> (N, K) squared Euclidean distances, >= 0."""
    cross = points @ centers.T
    sq = np.einsum("ij,ij->i", points, points)[:, None] - 2.0 * cross + np.einsum("ij,ij->i", centers, centers)[None, :]
    return np.maximum(sq, 0.0)


def _seed_centers(points: NDArray[np.float64], k: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Pick up to k centers with greedy k-means++ (2 + log k candidates per step).

    Stops early once every point coincides with a center, so duplicates never become
    two centers.
    """
    n = points.shape[0]
    trials = 2 + int(math.log(k))
    chosen = [int(rng.integers(n))]
    closest = _squared_distances(points, points[chosen])[:, 0]
    while len(chosen) < k:
        potential = closest.sum()
        if potential <= 0.0:
            break
        draws = rng.random(trials) * potential
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws, side="right"), n - 1)
        candidate_dist = np.minimum(closest[None, :], _squared_distances(points, points[candidates]).T)
        best = int(np.argmin(candidate_dist.sum(axis=1)))
        if closest[candidates[best]] <= 0.0:
            break
        chosen.append(int(candidates[best]))
        closest = candidate_dist[best]
    return points[chosen].copy()


def _assign(points: NDArray[np.float64], centers: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Label each point with its nearest center; also return its squared distance (N,)."""
    sq = _squared_distances(points, centers)
    labels = np.argmin(sq, axis=1).astype(np.int64)
    return labels, sq[np.arange(points.shape[0]), labels]


def _update_centers(
    points: NDArray[np.float64],
    labels: NDArray[np.int64],
    sq_dist: NDArray[np.float64],
    centers: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Move each center to the mean of its points.

    A center left without points moves to the point farthest from its own center, the
    usual fix that keeps K clusters.
    """
    k = centers.shape[0]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.stack([np.bincount(labels, weights=points[:, d], minlength=k) for d in range(points.shape[1])], axis=1)
    new_centers = centers.copy()
    filled = counts > 0
    new_centers[filled] = sums[filled] / counts[filled, None]
    farthest_first = np.argsort(-sq_dist, kind="stable")
    for slot, cluster in enumerate(np.flatnonzero(~filled)):
        new_centers[cluster] = points[farthest_first[slot]]
    return new_centers
