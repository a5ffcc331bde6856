"""The package's import graph: layers that only import downwards, and no circles.

Read from the source with ``ast`` (every import, including those inside functions and under
``TYPE_CHECKING``), so a new arrow running back up fails here before it becomes a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shortcut_policy"
ENTRY_POINTS = {"train", "rollout", "collect", "convert", "serve", "export", "sample_images", "cli"}
# Lowest first. A module may import its own layer or any lower one.
LAYERS = [
    {"atomic", "extras"},  # leaf helpers: atomic file writes, optional dependencies
    {"checkpoints"},
    {"data"},
    {"models"},
    {"objectives"},
    {"tasks"},
    {"training"},
    {"policy"},
    {"evaluation"},
    {"deploy"},
    ENTRY_POINTS,
    {"__init__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Modules of this package that ``path`` imports (``from pkg import sub`` names ``pkg.sub``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import sub`` imports the submodule; ``from pkg import name``, the package
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= subs or {node.module}
    return {m for m in found if m in known}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, known) - {module_name(p)} for p in paths}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")


def test_the_package_root_holds_entry_points_and_at_most_three_other_modules():
    root = {p.stem for p in PACKAGE.glob("*.py")} - ENTRY_POINTS - {"__init__"}
    assert len(root) <= 3, f"library modules at the package root: {sorted(root)}"


def test_every_import_points_to_the_same_layer_or_a_lower_one():
    upward = [
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if layer_of(b) > layer_of(a)
    ]
    assert not upward, "imports running back up:\n" + "\n".join(sorted(upward))


def test_no_module_imports_itself_through_a_circle():
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_a_circle_and_an_upward_arrow(tmp_path, monkeypatch):
    """The checks above can fail: a planted pair of modules importing each other is caught."""
    fake = tmp_path / "shortcut_policy"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("")
    (fake / "data" / "a.py").write_text("from shortcut_policy.policy import b\n")
    (fake / "policy").mkdir()
    (fake / "policy" / "__init__.py").write_text("")
    (fake / "policy" / "b.py").write_text("import shortcut_policy.data.a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    with pytest.raises(AssertionError, match="data.a -> shortcut_policy.policy.b"):
        test_every_import_points_to_the_same_layer_or_a_lower_one()
    with pytest.raises(pytest.fail.Exception, match="import circle"):
        test_no_module_imports_itself_through_a_circle()


def test_every_package_folder_travels_in_the_wheel():
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    folders = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert folders <= listed, f"add to pyproject's packages: {sorted(folders - listed)}"
