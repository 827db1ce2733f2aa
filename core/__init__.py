"""prf: frame-exact, fast loading of LeRobot robot-learning datasets for every framework.

``import prf`` imports no deep-learning framework; the adapters are ``prf.torch``, ``prf.mlx``,
``prf.jax`` (Grain) and ``prf.keras`` (PyDataset, tf.data).

``prf`` is extended with ``pkgutil.extend_path``: an adapter installed as its own distribution
(``pip install ./adapters/mlx``: ``prf-mlx``, which ships ``prf/mlx/`` and no ``prf/__init__.py``) is
found as ``prf.mlx`` even when it lies in another ``site-packages`` than this package (a virtualenv with
system site packages, a user site, an editable core). Adapters register under the entry-point group
``prf.adapters`` (see :mod:`prf._plugins`), which ``ds.loader(output=...)`` looks up.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from . import errors  # noqa: E402
from ._demo_data import make_demo_dataset
from ._open import as_dataset, open_dataset, resolve_source
from .dataset import Dataset
from .decode import BackendCapabilities, DecodeBackend, FrameCache, PyAVBackend, TorchCodecBackend, VideoIndex
from .errors import PrfError
from .ingest import ConversionReport, RoboticsDataFrame, convert_log, log_to_lerobot
from .format import DatasetMeta, Episode, Feature, VideoRef
from .loading import transforms
from .loading import BatchTransform, DecodeOptions, Loader, LoaderIterator, ReadOptions, ShardOptions
from .loading.normalize import Normalizer
from .sampling import (
    CurriculumSampler,
    CurriculumWeightedSampler,
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
from .query import SimilarityIndex, score_episodes, similar, sql, validate
from . import report
from .report import write_recording, write_report
from .writer import write_lerobot_dataset
from .record import record_mqtt
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

from ._version import __version__

__all__ = [
    "record_mqtt",
    "open_dataset",
    "as_dataset",
    "resolve_source",
    "make_demo_dataset",
    "Dataset",
    "DatasetMeta",
    "Episode",
    "Feature",
    "VideoRef",
    "DecodeBackend",
    "BackendCapabilities",
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
    "CurriculumSampler",
    "CurriculumWeightedSampler",
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
    "SimilarityIndex",
    "validate",
    "report",
    "write_report",
    "write_recording",
    "__version__",
]
