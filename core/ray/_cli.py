"""``--ray ADDRESS`` on ``prf convert`` and ``prf score`` (core/cli.py calls these; the printing stays there)."""

from __future__ import annotations

import argparse
from typing import Any


def add_ray_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--ray ADDRESS`` option of a command (``what``: the jobs it runs, for the help)."""
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help=f"run {what} as Ray tasks on the cluster at ADDRESS ('auto', HOST:PORT, "
                        "ray://HOST:10001; needs prf[ray]); paths must be readable on every node")


def convert(args: argparse.Namespace) -> list[Any]:
    """``prf convert LOG [LOG ...] OUT --ray ADDRESS``: :func:`prf.ray.convert_logs` into ``OUT/<log name>``."""
    from .bulk import convert_logs

    return convert_logs(args.log, args.out, topics=args.topics, start=args.start, end=args.end,
                        overwrite=args.overwrite, address=args.ray)


def score(args: argparse.Namespace) -> Any:
    """``prf score PATH [PATH ...] --ray ADDRESS``: one table; with several datasets, a leading
    ``dataset`` column (the path as given) and their rows in the order given."""
    import pyarrow as pa

    from .bulk import score as score_many

    tables = score_many(args.path, cameras=None if not args.no_cameras else [], samples=args.samples,
                        address=args.ray)
    if len(tables) == 1:
        return tables[0]
    parts = [t.add_column(0, "dataset", pa.array([str(p)] * t.num_rows, pa.string())) for p, t in zip(args.path, tables)]
    return pa.concat_tables(parts, promote_options="permissive")
