"""Query and curate demonstrations: SQL over frames and episodes (DuckDB), validation, episode quality
scores, similarity search (``pip install "prf[query]"``).

DuckDB and usearch are imported only when a function needing them runs, so ``import prf`` works
without the extra.
"""

from ._sql import connect, data_files, resolve_episodes, sql, topic_view_name
from .scores import laplacian_variance, score_episodes
from .similar import SimilarityIndex, exact_neighbours, frame_vectors, similar, similar_cache_dir
from .validate import CHECKS, Finding, ValidationReport, validate

__all__ = ["SimilarityIndex", "exact_neighbours", "frame_vectors", "similar", "similar_cache_dir", "laplacian_variance", "score_episodes", "CHECKS", "Finding", "ValidationReport", "validate", "connect", "data_files", "resolve_episodes", "sql", "topic_view_name"]
