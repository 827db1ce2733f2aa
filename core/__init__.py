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
from .loading import Loader
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
from .query import score_episodes, similar, sql, validate
from .writer import write_lerobot_dataset
from . import edit
from .edit import (
    append_episodes,
    delete_episodes,
    export_episodes,
    merge_datasets,
    split_dataset,
    subset_dataset,
    upgrade_dataset,
)

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
    "edit",
    "delete_episodes",
    "split_dataset",
    "merge_datasets",
    "subset_dataset",
    "append_episodes",
    "upgrade_dataset",
    "export_episodes",
    "sql",
    "score_episodes",
    "similar",
    "validate",
    "__version__",
]
