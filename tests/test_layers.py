"""Layering: the import-linter contract in pyproject.toml (layers, no framework in the core), no
import cycle anywhere in ``prf`` (lazy imports inside functions included: grimp sees them), no
adapter or framework imported by any core module, the CLI reaching adapters only through entry points,
and the adapters on the core's public API (no private prf names, no Grain internals), each module
about 250 lines at most, nothing process-wide changed at import."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

CORE = REPO / "core"
ADAPTER_DIR = REPO / "adapters"
ADAPTERS = ("torch", "mlx", "jax", "keras")
FRAMEWORKS = ("torch", "torchdata", "jax", "jaxlib", "mlx", "tensorflow", "keras", "grain", "absl", "optax")


def _grimp():
    try:
        import grimp
    except ImportError:  # pragma: no cover - the test extra installs import-linter (and grimp)
        pytest.fail("grimp is missing: pip install -e '.[test]' (import-linter)")
    return grimp


def test_import_linter_contract_is_kept():
    """`lint-imports` with pyproject.toml's [tool.importlinter] (as CI runs it)."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename='pyproject.toml'))"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in r.stdout


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle_in_prf():
    graph = _grimp().build_graph("prf")
    assert len(graph.modules) > 40
    cycles = _cycles(graph)
    chains = [graph.find_shortest_chain(c[0], c[1]) for c in cycles]
    assert cycles == [], f"import cycles: {cycles}; e.g. {chains}"


def test_cycle_finder_finds_a_cycle():
    """The check above can fail: a graph with a lazy-import cycle is reported."""
    graph = _grimp().ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b"]]


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module a file imports (top level and inside functions; relative imports resolved;
    ``importlib.import_module("...")`` string literals too), with line numbers."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def _core_files():
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE).with_suffix("")
        yield path, ".".join(["prf", *rel.parts[:-1]])  # the package a relative import starts from


def _is_under(mod: str, names) -> bool:
    return any(mod == n or mod.startswith(n + ".") for n in names)


def test_core_imports_no_adapter_and_no_framework():
    bad = []
    adapters = [f"prf.{fw}" for fw in ADAPTERS]
    for path, package in _core_files():
        for line, mod in _imports(path, package):
            if _is_under(mod, adapters) or _is_under(mod, FRAMEWORKS):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {mod}")
    assert bad == []


def test_import_scan_sees_lazy_and_relative_imports(tmp_path):
    """The scan above can fail: lazy, relative and import_module imports are all seen."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from ..torch import demo\n    import jax\n    importlib.import_module('prf.mlx')\n")
    mods = [m for _, m in _imports(f, "prf.cli")]
    assert {"prf.torch", "prf.torch.demo", "jax", "prf.mlx"} <= set(mods)


def test_cli_reaches_adapters_only_through_entry_points():
    src = (CORE / "cli.py").read_text()
    assert "load_command(\"demo\")" in src
    mods = [m for _, m in _imports(CORE / "cli.py", "prf")]
    assert not [m for m in mods if _is_under(m, [f"prf.{fw}" for fw in ADAPTERS])]


def _adapter_files():
    for path in sorted(ADAPTER_DIR.rglob("*.py")):
        rel = path.relative_to(ADAPTER_DIR).with_suffix("")
        yield path, ".".join(["prf", *rel.parts[:-1]])


def test_adapters_use_the_core_public_api_only():
    """No private prf module or name (``prf.loading._batches``, ``Loader._load``), no private attribute
    of another object (Grain's ``_stats``, a parent's ``_getitems``), no subclass of a Grain dataset
    (whose private protocol it would have to override). Implementing ``DataSource._getitems`` (Grain's
    batched-read protocol for sources, which has no public name) is allowed: it is a definition."""
    bad = []
    for path, package in _adapter_files():
        own = package.split(".")[:2]
        for line, mod in _imports(path, package):
            parts = mod.split(".")
            if parts[0] == "prf" and parts[:2] != own and any(p.startswith("_") for p in parts[1:]):
                bad.append(f"{path.relative_to(REPO)}:{line} imports private {mod}")
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} uses private attribute .{node.attr}")
            if isinstance(node, ast.ClassDef):
                for b in node.bases:
                    name = ast.unparse(b)
                    if name.startswith("grain.") and name.endswith(("MapDataset", "IterDataset")):
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} subclasses {name}")
    assert bad == []


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in ADAPTER_DIR.rglob("*.py")))
def test_adapter_modules_are_small(path):
    n = len((REPO / path).read_text().splitlines())
    assert n <= 260, f"{path}: {n} lines (about 250 at most: one concept per module)"


def test_importing_adapters_changes_nothing_process_wide():
    """Importing an adapter (after its framework) sets no environment variable and leaves absl's flags unparsed (prf.jax
    marks them parsed only in map_dataset / data_loader(worker_count > 0)); the malloc tuning is the
    loader's, applied when a camera dataset is iterated."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        import torch, mlx.core, jax, grain, keras, tensorflow  # the frameworks set variables of their own
        before = dict(os.environ)
        import prf, prf.torch, prf.mlx, prf.jax, prf.keras
        from absl import flags
        from prf.decode import _malloc
        changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
        print("env", changed, "absl_parsed", flags.FLAGS.is_parsed(), "malloc", _malloc._done)
        prf.jax.map_dataset(prf.open_dataset(sys.argv[1], episodes=[0], cameras=[]), 4)
        print("after map_dataset", flags.FLAGS.is_parsed())
    """), str(REPO.parent / "shared" / "data" / "lerobot" / "pusht_sim_v30")],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "env [] absl_parsed False malloc False" in r.stdout, r.stdout
    assert "after map_dataset True" in r.stdout
