"""prf: frame-exact, fast loading of LeRobot robot-learning datasets for every framework.

``import prf`` imports no deep-learning framework; the adapters are ``prf.torch``, ``prf.mlx``,
``prf.jax`` (Grain) and ``prf.keras`` (PyDataset, tf.data).
"""

from . import errors
from ._open import open_dataset
from .dataset import Dataset
from .cache import FrameCache
from .decode import DecodeBackend, PyAVBackend, TorchCodecBackend, VideoIndex
from .errors import PrfError
from .ingest import ConversionReport, RoboticsDataFrame, convert_log, log_to_lerobot
from .format import DatasetMeta, Episode, Feature, VideoRef
from .loading import transforms
from .loading import BatchTransform, DecodeOptions, Loader, LoaderIterator, ReadOptions, ShardOptions
from .loading.normalize import Normalizer
from .sampling import (
    EpisodeChunkSampler,
    EpisodePoolSampler,
    FilteredSampler,
    Sampler,
    SequentialSampler,
    ShuffleSampler,
    WeightedSampler,
    select_episodes,
    train_val_split,
)
from .stats import compute_stats
from .writer import write_lerobot_dataset

__version__ = "0.1.0"

__all__ = [
    "open_dataset",
    "Dataset",
    "DatasetMeta",
    "Episode",
    "Feature",
    "VideoRef",
    "DecodeBackend",
    "PyAVBackend",
    "TorchCodecBackend",
    "FrameCache",
    "VideoIndex",
    "PrfError",
    "errors",
    "Loader",
    "LoaderIterator",
    "BatchTransform",
    "ReadOptions",
    "ShardOptions",
    "DecodeOptions",
    "Sampler",
    "SequentialSampler",
    "ShuffleSampler",
    "FilteredSampler",
    "EpisodeChunkSampler",
    "EpisodePoolSampler",
    "WeightedSampler",
    "select_episodes",
    "train_val_split",
    "compute_stats",
    "Normalizer",
    "transforms",
    "convert_log",
    "ConversionReport",
    "RoboticsDataFrame",
    "log_to_lerobot",
    "write_lerobot_dataset",
    "__version__",
]
