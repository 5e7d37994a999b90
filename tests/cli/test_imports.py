"""The CLI is a front: its modules import the library and each other without a cycle, never
at function level from one another, and never a private module of another package."""

from __future__ import annotations

import ast
from pathlib import Path

import anywidth.cli

CLI = Path(anywidth.cli.__file__).parent


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at top level)`` for every ``anywidth`` import of a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(n, id(node) in top) for n in names if n.split(".")[0] == "anywidth"]
    return found


def _cli_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(CLI.glob("*.py")):
        module = f"anywidth.cli.{path.stem}"
        graph[module] = {n for n, _ in _imports(path) if n.startswith("anywidth.cli.")}
    return graph


def test_cli_modules_import_each_other_without_a_cycle():
    graph, done = _cli_graph(), set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
    assert "anywidth.cli.main" in done and len(graph) > 10


def test_cli_modules_import_no_command_at_function_level_and_nothing_private_elsewhere():
    for path in sorted(CLI.glob("*.py")):
        for module, top_level in _imports(path):
            parts = module.split(".")
            if parts[1:2] == ["cli"]:
                assert top_level, f"{path.name} imports {module} inside a function"
            else:
                private = [p for p in parts[1:] if p.startswith("_")]
                assert not private, f"{path.name} imports the private {module}"


def test_the_import_checks_see_a_cycle_and_a_private_import(tmp_path):
    """The checks above can fail: the parser finds both faults in a file that has them."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import anywidth.graph._trace\ndef f():\n    from anywidth.cli.main import main\n"
    )
    assert _imports(bad) == [("anywidth.graph._trace", True), ("anywidth.cli.main", False)]


def test_cli_modules_stay_small():
    """Each command module is argument parsing and printing; the work is in the library."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in CLI.glob("*.py")}
    assert len(sizes) > 10 and {name: n for name, n in sizes.items() if n > 110} == {}
