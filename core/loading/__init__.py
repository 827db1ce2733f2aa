"""The loading layer: batches of sample plans -> decode plan (by file and GOP) -> worker pool -> batch
transforms (image transforms, normalization) -> NumPy batch dicts."""

from . import transforms
from .batch_transform import BatchTransform, TransformedDataset
from .loader import ConvertedIterator, ConvertedLoader, Loader, LoaderIterator
from .normalize import Normalizer
from .options import DecodeOptions, ReadOptions, ShardOptions

__all__ = ["BatchTransform", "ConvertedIterator", "ConvertedLoader", "DecodeOptions", "Loader", "LoaderIterator",
           "Normalizer", "ReadOptions", "ShardOptions", "TransformedDataset", "transforms"]
