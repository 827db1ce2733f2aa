"""``import prf`` (and using the core) imports no deep-learning framework; each adapter, when its
framework is missing, raises an ImportError that names the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import dataset_path

FRAMEWORKS = ["torch", "jax", "jaxlib", "mlx", "tensorflow", "keras", "grain"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_import_prf_imports_no_framework():
    root = dataset_path("pusht_sim_v30")
    r = _run(f"""
        import sys
        import prf
        after_import = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)
        ds = prf.open_dataset({str(root)!r}, delta_timestamps={{"action": [0.0, 0.1]}})
        for _, batch in zip(range(2), ds.loader(4, shuffle=True, num_workers=2)):
            pass
        after_use = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)
        print(after_import, after_use)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[] []", r.stdout


@pytest.mark.parametrize("adapter, blocked, extra", [
    ("prf.torch", ["torch"], "prf[torch]"),
    ("prf.mlx", ["mlx", "mlx.core"], "prf[mlx]"),
    ("prf.jax", ["jax", "grain"], "prf[jax]"),
    ("prf.keras", ["keras"], "prf[keras]"),
])
def test_adapter_without_framework_names_its_extra(adapter, blocked, extra):
    # a None entry in sys.modules makes `import name` raise ImportError, as if it were not installed
    r = _run(f"""
        import sys
        for m in {blocked!r}:
            sys.modules[m] = None
        try:
            import {adapter}
        except ImportError as e:
            print("ImportError:", e)
        else:
            print("imported")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ImportError:") and extra in r.stdout, r.stdout
