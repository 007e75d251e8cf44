"""The product (src/selfheal, the operator CLI) never imports the bench (selfheal_bench) at import time."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "src" / "selfheal"
# The only places the product may name the bench: the commands that run on it import it inside the command.
LAZY_SITES = {("cli.py", "bench"), ("cli.py", "_local_run"), ("cli.py", "_backtest"), ("cli.py", "_demo"),
              ("cli.py", "_local_invoke")}


def bench_imports(path: Path) -> list[tuple[str, str, int]]:
    """(file, enclosing function or '<module>', line) of every import of selfheal_bench in `path`."""
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
            names = ([a.name for a in child.names] if isinstance(child, ast.Import)
                     else [child.module or ""] if isinstance(child, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "selfheal_bench" for name in names):
                found.append((path.name, scope, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>")
    return found


def test_the_product_imports_the_bench_only_inside_the_commands_that_run_on_it():
    # Given every module of the product
    modules = sorted(PRODUCT.rglob("*.py"))
    assert modules
    # When each is read for imports of the bench
    found = [hit for path in modules for hit in bench_imports(path)]
    # Then the only ones are the lazy imports in the CLI's bench commands, and those exist
    assert {(file, scope) for file, scope, _ in found} == LAZY_SITES
    assert not [hit for hit in found if hit[1] == "<module>"]
