"""Adapter and command plugins, found through ``importlib.metadata`` entry points.

Two entry-point groups:

- ``prf.adapters``: ``name = "module"`` (or ``"module:object"``), one per framework output
  (``torch``, ``mlx``, ``jax``, ``keras``). The object provides

  - ``convert_batch(batch: dict) -> dict``: a NumPy batch (or sample) as the framework's arrays;
  - ``wrap_loader(loader: prf.Loader)``: an iterable of converted batches whose ``len``, ``epoch``,
    ``set_epoch``, ``state_dict`` and ``load_state_dict`` are the loader's.

  :meth:`prf.Dataset.loader` (``output="torch"``) calls :func:`wrap_loader` here.
- ``prf.commands``: ``name = "module:function"``, a ``prf <name>`` subcommand implemented by an
  adapter (``demo``: ``prf.torch.demo:run_demo``). The CLI reaches it here, never by importing an
  adapter.

Who registers them: the monorepo distribution ``prf`` (``pip install "prf[torch]"``; it bundles the
four adapters, see ``setup.py``) and each standalone adapter distribution (``pip install
./adapters/mlx`` gives ``prf-mlx``). When both are installed the entry points name the same module,
so the first is used.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

from .errors import PluginError

ADAPTERS = "prf.adapters"
COMMANDS = "prf.commands"
NUMPY = "numpy"
# the distribution (and the monorepo extra) that provides each known plugin
_PACKAGES = {"torch": "torch", "mlx": "mlx", "jax": "jax", "keras": "keras", "demo": "torch"}


def _install_hint(name: str) -> str:
    fw = _PACKAGES.get(name)
    if fw is None:
        return "install the distribution that provides it"
    return f"pip install 'prf[{fw}]' (or the standalone adapter: pip install prf-{fw}, ./adapters/{fw} in the repo)"


def _entry_points(group: str) -> dict[str, EntryPoint]:
    """``{name: entry point}`` of ``group``, as ``importlib.metadata.entry_points`` sees them (the first
    distribution of each name on ``sys.path``, as imports resolve); the first of duplicate names
    (a bundled and a standalone adapter both installed name the same module)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def adapter_names() -> list[str]:
    """The installed adapters' names (``output=`` values besides ``"numpy"``), sorted. Their
    frameworks may still be missing: :func:`load_adapter` says so."""
    return sorted(_entry_points(ADAPTERS))


def _load(group: str, name: str, what: str) -> Any:
    eps = _entry_points(group)
    ep = eps.get(name)
    if ep is None:
        installed = ", ".join(sorted(eps)) or "none"
        raise PluginError(f"{what} {name!r} is not installed (entry point {name!r} in group {group!r}; "
                          f"installed: {installed}): {_install_hint(name)}")
    try:
        return ep.load()
    except ImportError as e:  # the framework (or the adapter's module itself) is missing
        raise PluginError(f"{what} {name!r} ({ep.value}) cannot be imported: {e}. {_install_hint(name)}") from e


def load_adapter(name: str) -> Any:
    """The adapter registered as ``name`` in ``prf.adapters`` (imports it and its framework).

    Raises:
        PluginError: no such adapter is installed, it fails to import (its framework is missing), or
            it lacks ``convert_batch`` / ``wrap_loader``. The message names the package to install.
    """
    adapter = _load(ADAPTERS, name, "adapter")
    missing = [a for a in ("convert_batch", "wrap_loader") if not callable(getattr(adapter, a, None))]
    if missing:
        raise PluginError(f"adapter {name!r} ({adapter!r}) does not provide {missing}")
    return adapter


def wrap_loader(loader: Any, output: str | None) -> Any:
    """``loader`` itself for ``output`` ``None`` / ``"numpy"``; else ``load_adapter(output).wrap_loader(loader)``.

    Raises:
        PluginError: see :func:`load_adapter`.
    """
    if output is None or output == NUMPY:
        return loader
    if not isinstance(output, str):
        raise TypeError(f"output must be a str ('numpy', {', '.join(map(repr, adapter_names()))}), got {output!r}")
    return load_adapter(output).wrap_loader(loader)


def load_command(name: str) -> Callable[..., Any]:
    """The function registered as ``name`` in ``prf.commands`` (for ``prf <name>``).

    Raises:
        PluginError: not installed, or it fails to import; the message names the package to install.
    """
    return _load(COMMANDS, name, "command")
