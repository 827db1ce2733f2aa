"""prf's version: one definition, read by ``prf.__version__``, the CLI, the ingest metadata and the
packaging (``pyproject.toml``: ``version = {attr = "prf._version.__version__"}``). A module of its own so
that no part of prf imports the ``prf`` package itself (which imports every layer)."""

__version__ = "0.1.0"
