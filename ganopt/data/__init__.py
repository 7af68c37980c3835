"""Data sources: infinite iterators of batches on the training device, with a ``shape`` (one
sample's) and ``sample(n, generator)`` for figures and evaluation."""

from ganopt.data.images import DataError, ImageBatches, digits, folder, torchvision_dataset
from ganopt.data.toy import GaussianMixture, SwissRoll, grid, ring

__all__ = [
    "DataError",
    "GaussianMixture",
    "ImageBatches",
    "SwissRoll",
    "digits",
    "folder",
    "grid",
    "ring",
    "torchvision_dataset",
]
