"""argparse value types shared by ``prf.cli`` and the commands of the platform packages
(``prf.report._cli``, ...), which sit below the CLI and cannot import it."""

from __future__ import annotations

import argparse


def int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (else a usage error, exit 2, naming the value)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def int_list(text: str) -> list[int]:
    """An argparse type: comma-separated episode indices (``"1, 5,9"`` -> ``[1, 5, 9]``)."""
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated episode indices, got {text!r}") from None
