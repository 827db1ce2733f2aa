"""The sampling layer: ``(seed, epoch, rank, world_size)`` -> an order of dataset positions.

Every sampler's order is a pure function of those four values and of the dataset's episode layout,
and resumes exactly from its ``state_dict()``.
"""

from .curriculum import CurriculumSampler, CurriculumWeightedSampler
from .samplers import (
    EpisodeChunkSampler,
    EpisodePoolSampler,
    FilteredSampler,
    Sampler,
    SequentialSampler,
    ShuffleSampler,
    WeightedSampler,
    default_rank_world_size,
    distinct_episodes_per_batch,
    require_fixed_length,
    select_episodes,
    train_val_split,
    undelivered,
)

__all__ = ["CurriculumSampler", "CurriculumWeightedSampler", "EpisodeChunkSampler", "EpisodePoolSampler", "FilteredSampler", "Sampler", "SequentialSampler",
           "ShuffleSampler", "WeightedSampler", "default_rank_world_size", "distinct_episodes_per_batch", "require_fixed_length",
           "select_episodes", "train_val_split", "undelivered"]
