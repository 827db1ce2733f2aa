"""Build hooks of the monorepo distribution ``prf``; all other metadata is in ``pyproject.toml``.

By default ``prf`` bundles the four adapters (``prf.torch``, ``prf.mlx``, ``prf.jax``, ``prf.keras``,
from ``adapters/<fw>/``) and registers them as plugins, so ``pip install "prf[mlx]"`` (and the
README's ``pip install -e ".[all,test]"``) gives ``import prf.mlx`` and ``ds.loader(output="mlx")``.

``PRF_CORE_ONLY=1 pip install .`` builds the core alone: no adapter packages, no adapter entry points.
That is the ``prf`` the standalone adapter distributions (``pip install ./adapters/mlx`` ->
``prf-mlx``) install into, each shipping only its ``prf/<fw>/`` folder and its own entry point
(``tests/test_plugins.py`` builds both ways in a fresh virtualenv).

The entry points are declared here (``dynamic = ["entry-points", "scripts"]`` in pyproject.toml)
because a core-only build must not register adapters it does not contain (and setuptools ignores
setup.py's entry points when pyproject.toml declares the scripts); ``tests/test_plugins.py`` checks that
they equal the ones in ``adapters/<fw>/pyproject.toml``.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ADAPTERS = ("torch", "mlx", "jax", "keras")
CORE_ONLY = os.environ.get("PRF_CORE_ONLY", "0") == "1"
ENTRY_POINTS = {
    "console_scripts": ["prf = prf.cli:main"],
    "prf.adapters": [f"{fw} = prf.{fw}" for fw in ADAPTERS],
    "prf.commands": ["demo = prf.torch.demo:run_demo"],
}


def _is_adapter(package: str) -> bool:
    parts = package.split(".")
    return len(parts) >= 2 and parts[0] == "prf" and parts[1] in ADAPTERS


class _BuildPy(build_py):
    """With ``PRF_CORE_ONLY=1``: build no adapter package (and drop any a previous build left)."""

    def finalize_options(self):
        super().finalize_options()
        if CORE_ONLY:
            self.packages = [p for p in self.packages if not _is_adapter(p)]

    def run(self):
        if CORE_ONLY:
            for fw in ADAPTERS:
                shutil.rmtree(os.path.join(self.build_lib, "prf", fw), ignore_errors=True)
        super().run()


setup(cmdclass={"build_py": _BuildPy},
      entry_points={k: v for k, v in ENTRY_POINTS.items() if k == "console_scripts" or not CORE_ONLY})
