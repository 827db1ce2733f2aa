"""The loading layer: batches of sample plans -> decode plan (by file and GOP) -> worker pool -> batch
transforms (image transforms, normalization) -> NumPy batch dicts."""

from . import transforms
from .loader import ConvertedLoader, Loader
from .normalize import Normalizer

__all__ = ["ConvertedLoader", "Loader", "Normalizer", "transforms"]
