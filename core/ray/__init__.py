"""prf on Ray (``pip install 'prf[ray]'``): a Ray Data source of prf's samples, and bulk jobs.

- :func:`read_dataset`: a LeRobot dataset as a ``ray.data.Dataset`` whose rows equal ``ds[i]``
  (read tasks are groups of whole episodes aligned to the video files; see :mod:`prf.ray._source`).
- :func:`convert_logs`, :func:`logs_to_lerobot`, :func:`score`: one Ray task per log or dataset,
  retried by Ray when a worker dies (see :mod:`prf.ray.bulk`).

``import prf`` does not import this package, and importing it does not import Ray: Ray is imported
when a function here is called.
"""

from ._source import datasource, read_dataset
from .bulk import connect, convert_logs, logs_to_lerobot, score

__all__ = ["read_dataset", "datasource", "convert_logs", "logs_to_lerobot", "score", "connect"]
