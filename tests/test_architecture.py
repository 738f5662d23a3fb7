"""The shape of the harness: no import circles among its modules, and the boundaries the
design draws (docs/architecture.md) hold. Imports inside functions count too: a lazy import
is still a dependency."""

import ast
from pathlib import Path

import pytest

from harness.paths import PACKAGE_DIR


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def harness_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")
            if "devices" not in p.relative_to(PACKAGE_DIR).parts}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The harness modules (and outside packages) `path` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            # `from harness.lab import inventory` imports the module harness.lab.inventory
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = harness_modules()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def internal(graph, name) -> set[str]:
    # A module importing its own package's __init__ (docstring only) is no dependency.
    return {m for m in graph[name] if m in graph and m != name and not name.startswith(m + ".")}


def test_no_import_circles(graph):
    """Tarjan's strongly connected components over the harness's own modules."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in internal(graph, node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


FORBIDDEN_FOR_BACKENDS = ("harness.lab", "harness.build.platformio", "labgrid", "platformio")


def test_backends_never_import_the_lab_labgrid_or_platformio(graph):
    """A backend gets a resolved board resource from the session; finding, locking and
    flashing a board are the lab's."""
    offenders = {name: sorted(m for m in graph[name]
                              if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_FOR_BACKENDS))
                 for name in graph if name.startswith("harness.backends")}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_core_plugin_does_not_import_optional_parts(graph):
    """Lab scale, fault injection, PlatformIO and energy instruments are only imported when
    used, by their own plugins or lazily by the code that needs them."""
    optional = ("harness.plugin.lab", "harness.faults", "harness.lab.labgrid",
                "harness.build.platformio", "harness.energy.ppk2_source",
                "harness.energy.joulescope_source")
    core = graph["harness.plugin.core"]
    assert not [m for m in core if any(m == o or m.startswith(o + ".") for o in optional)]


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for name, path in harness_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
                private = [a.name for a in node.names
                           if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    offenders.append(f"{name} imports {', '.join(private)} from {node.module}")
    assert not offenders, offenders
