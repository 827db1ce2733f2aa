"""Editing datasets without re-encoding: delete, split, merge, subset (episodes/features/cameras),
append (in place, with revision records and a lock), upgrade v2.x -> v3.0, export episodes.

Every result is a LeRobot v3.0 dataset LeRobot 0.4.4 reads. Every operation builds in a temporary
folder beside its output and renames it at the end, so an interrupt leaves the source untouched and
no half output. Videos are remuxed packet by packet (:mod:`._remux`); parquet is rewritten with Arrow
(:mod:`._tables`).
"""

from .append import append_episodes, dataset_lock, open_revision, revision_episodes, revisions
from .delete import delete_episodes
from .export import export_episode, export_episodes
from .merge import merge_datasets
from .split import split_dataset, split_episodes
from .subset import subset_dataset
from .upgrade import upgrade_dataset

__all__ = ["append_episodes", "dataset_lock", "delete_episodes", "export_episode", "export_episodes",
           "merge_datasets", "open_revision", "revision_episodes", "revisions", "split_dataset", "split_episodes",
           "subset_dataset", "upgrade_dataset"]
