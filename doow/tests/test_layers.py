"""The import graph follows docs/architecture.md: no cycles, and no import from a lower layer
to a higher one.

Every import counts, wherever it is written (module level, inside a function, under
TYPE_CHECKING): an import hidden in a function still ties the two modules together. The layer
map is read from the table in docs/architecture.md, so the written rule and this check are one.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "alerts", "doow", "integrations", "usage", "sandbox")
DOC = ROOT / "docs" / "architecture.md"


def _is_test(rel: Path) -> bool:
    return (
        "tests" in rel.parts or "migrations" in rel.parts or rel.name.startswith("test_") or rel.name == "conftest.py"
    )


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if _is_test(rel):
                continue
            parts = rel.with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[tuple[str, int]]:
    """(project module imported, line) for every import statement in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            # `from package import module` imports the module; `from module import name` the module.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # A package's own submodules and its parents are not edges (Python loads parents first).
            if target and target != name and not name.startswith(target + "."):
                found.add((target, node.lineno))
    return found


def layer_map() -> list[tuple[int, str, list[str]]]:
    text = DOC.read_text()
    table = text.split("<!-- layers", 1)[1].split("<!-- /layers -->", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1], re.findall(r"`([^`]+)`", cells[2])))
    return rows


def layer_of(module: str, rows: list[tuple[int, str, list[str]]]) -> int | None:
    """The layer naming the module exactly, else the one whose wildcard matches it (a module two
    wildcards match must be named: the map is then ambiguous and this raises)."""
    exact = [number for number, _, patterns in rows if module in patterns]
    if exact:
        return exact[0]
    matches = {number for number, _, patterns in rows for p in patterns if "*" in p and fnmatch.fnmatchcase(module, p)}
    if len(matches) > 1:
        raise AssertionError(f"{module} matches wildcards of layers {sorted(matches)}: name it in docs/architecture.md")
    return matches.pop() if matches else None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[tuple[str, int]]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others(graph):
    edges = {name: {target for target, _ in targets} for name, targets in graph.items()}
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(
        " ↔ ".join(c) + "".join(f"\n    {m} imports {sorted(edges[m] & set(c))}" for m in c) for c in cycles
    )


def test_every_module_has_a_layer():
    rows = layer_map()
    assert [number for number, _, _ in rows] == list(range(1, len(rows) + 1))
    unplaced = [name for name in project_modules() if layer_of(name, rows) is None]
    assert not unplaced, f"place these modules in the layer table of docs/architecture.md: {unplaced}"


def test_imports_run_downward_by_layer(graph):
    rows = layer_map()
    names = {number: name for number, name, _ in rows}
    upward = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module, rows)
        for target, line in sorted(targets):
            theirs = layer_of(target, rows)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module} ({names[mine]}) imports {target} ({names[theirs]}), line {line}")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_every_task_a_service_enqueues_is_registered():
    from doow.jobs import task_named

    named = set()
    for path in project_modules().values():
        named.update(re.findall(r"""(?:enqueue_on_commit|task_named)\(\s*["']([\w.]+)["']""", path.read_text()))
    assert named >= {"integrations.tasks.sync_integration", "usage.tasks.rebuild_rollups"}
    for name in sorted(named):
        assert task_named(name).name == name


# Apps own their parts: an app's entry points (views, forms, commands, admin, tasks, template tags;
# layer 6) are its own, and another app reaches its data through models, queries and services.
# `doow` holds the building blocks every app shares (doow.admin, doow.templatetags.*). These are
# the few entry points one app uses of another's, each for a reason:
CROSS_APP_ENTRY_POINTS = {
    ("accounts.urls", "usage.views.overview"): "the workspace's home page is the usage overview",
    ("doow.demo", "sandbox.demo"): "`make demo` connects the sandbox's fake providers",
    ("integrations.tasks", "alerts.tasks"): "a sync that changed rows evaluates the workspace's alerts",
    ("usage.tasks", "alerts.tasks"): "an import that stored rows evaluates the workspace's alerts",
    ("integrations.views", "usage.forms"): "an integration's usage tab filters and uploads with usage's forms",
    (
        "usage.management.commands.export_usage",
        "integrations.management.options",
    ): "the commands' shared --since/--until",
}
# Services are an app's own operations: another app calls them only where it starts one of them.
CROSS_APP_SERVICES = {
    ("integrations.services", "usage.services"): "a new integration gets its default attribution rule",
    ("doow.demo", "integrations.services"): "`make demo` connects integrations as an admin would",
    ("doow.demo", "usage.pricing.services"): "`make demo --smoke` asks for a price recompute as an override does",
}


def _cross_app(graph, layer: int) -> set[tuple[str, str]]:
    rows = layer_map()
    found = set()
    for module, targets in graph.items():
        for target, _ in targets:
            if (
                module.split(".")[0] != target.split(".")[0]
                and target.split(".")[0] != "doow"
                and layer_of(target, rows) == layer
            ):
                found.add((module, target))
    return found


def test_an_app_uses_no_other_apps_entry_points(graph):
    found = _cross_app(graph, 6)
    unexplained = sorted(found - set(CROSS_APP_ENTRY_POINTS))
    assert not unexplained, "a module imports another app's view, form, command, admin, task or tag:\n" + "\n".join(
        f"{a} imports {b}" for a, b in unexplained
    )
    assert not set(CROSS_APP_ENTRY_POINTS) - found, "an allowed import no longer exists: drop it from the list"


def test_usage_needs_nothing_from_the_integration_services_or_admin(graph):
    services = {(a, b) for a, b in _cross_app(graph, 5) if b.endswith(".services")}
    assert services == set(CROSS_APP_SERVICES), sorted(services ^ set(CROSS_APP_SERVICES))
    usage = {(a, t) for a, targets in graph.items() for t, _ in targets if a.split(".")[0] == "usage"}
    assert not {(a, t) for a, t in usage if t in ("integrations.services", "integrations.admin")}


def test_the_cross_app_check_sees_an_import_of_another_apps_view():
    graph = {"alerts.services": {("usage.views.explorer", 1)}, "usage.views.explorer": set()}
    assert _cross_app(graph, 6) == {("alerts.services", "usage.views.explorer")}
    assert _cross_app({"usage.admin": {("doow.admin", 1)}}, 6) == set()
