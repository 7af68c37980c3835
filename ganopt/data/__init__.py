"""Data sources: infinite iterators of batches that live on the training device."""

from ganopt.data.toy import GaussianMixture, SwissRoll, grid, ring

__all__ = ["GaussianMixture", "SwissRoll", "grid", "ring"]
