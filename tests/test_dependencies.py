"""Every third-party module the product imports is one of its declared runtime dependencies.

The product is `hr_jax/`, `models/` and `convert/`; `hr_jax/testing/` holds test fixtures, which may
also use the `test` extra. The declaration read is the installed package's own metadata
(`importlib.metadata.requires`), so a dependency that only an extra brings in cannot hide.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("hr_jax", "models", "convert")
FIXTURES = ROOT / "hr_jax" / "testing"
OWN = {"hr_jax", "models", "convert", "bench"}


def _imports(path: Path) -> set[str]:
    """Top-level module names imported by one file (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _third_party(files: list[Path]) -> dict[str, list[str]]:
    """{top-level module: files importing it} for modules outside the standard library and the repo."""
    found: dict[str, list[str]] = {}
    for f in files:
        for name in _imports(f) - OWN:
            if name not in sys.stdlib_module_names and name != "__future__":
                found.setdefault(name, []).append(str(f.relative_to(ROOT)))
    return found


def _declared(extra: str | None) -> set[str]:
    """Normalised distribution names hr_jax requires at run time (plus `extra`'s, if given)."""
    out = set()
    for req in md.requires("hr_jax") or []:
        name, _, marker = req.partition(";")
        in_extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if in_extra is None or (extra is not None and in_extra.group(1) == extra):
            out.add(_normalise(re.split(r"[\s<>=!~\[(]", name.strip(), maxsplit=1)[0]))
    return out


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _distributions(module: str) -> set[str]:
    return {_normalise(d) for d in md.packages_distributions().get(module, [])}


def _product_files() -> tuple[list[Path], list[Path]]:
    files = [f for pkg in PRODUCT for f in sorted((ROOT / pkg).rglob("*.py"))]
    runtime = [f for f in files if FIXTURES not in f.parents]
    return runtime, [f for f in files if FIXTURES in f.parents]


def test_every_runtime_import_is_a_declared_runtime_dependency():
    runtime, _ = _product_files()
    declared = _declared(None)
    undeclared = {m: where for m, where in _third_party(runtime).items() if not _distributions(m) & declared}
    assert not undeclared, f"imported but not in [project].dependencies: {undeclared}"


def test_test_fixtures_import_only_runtime_or_test_dependencies():
    _, fixtures = _product_files()
    declared = _declared("test")
    undeclared = {m: where for m, where in _third_party(fixtures).items() if not _distributions(m) & declared}
    assert not undeclared, f"hr_jax/testing imports undeclared packages: {undeclared}"


def test_chat_template_engine_is_a_declared_runtime_dependency():
    # transformers renders chat templates with jinja2 without depending on it; the README's first
    # command died on a bare install because of it.
    assert "jinja2" in _declared(None)


def test_the_import_scan_sees_every_product_package():
    runtime, fixtures = _product_files()
    assert {"jax", "numpy", "transformers"} <= set(_third_party(runtime))
    assert "torch" in _third_party(fixtures) and "torch" not in _third_party(runtime)
