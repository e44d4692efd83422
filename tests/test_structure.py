"""The code's arrows point one way (issue 11 §9): models at the bottom, services and selectors above
them, admin, tasks, API, views and commands at the top.

Read from the source with :mod:`ast`, so the test fails the moment someone adds an import cycle, an
import inside a function to dodge one, or an arrow pointing down-up (a service importing the admin).
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "assessment", "casework", "config")


def _modules() -> dict[str, Path]:
    out = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            name = ".".join(rel.with_suffix("").parts)
            if name.endswith(".__init__"):
                name = name[: -len(".__init__")]
            out[name] = path
    return out


MODULES = _modules()


def _targets(node: ast.AST, module: str) -> list[str]:
    """The project modules an import statement names (``from a import b`` names ``a.b`` if a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = module.split(".")
            if not MODULES[module].name == "__init__.py":
                pkg = pkg[:-1]
            pkg = pkg[: len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    return [n for n in names if n in MODULES and n != module]


def _imports():
    """Return (module-level graph, function-level imports as (module, line, target))."""
    graph, local = defaultdict(set), []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        inner = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        inner.add(id(node))
                        if fn.name != "ready":  # AppConfig.ready: Django's documented place
                            local += [(module, node.lineno, t) for t in _targets(node, module)]
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in inner:
                graph[module].update(_targets(node, module))
    return graph, local


GRAPH, LOCAL = _imports()


def _layer(module: str) -> int:
    """0 data (models), 1 services and selectors, 2 the top (admin, tasks, API, views, commands)."""
    last = module.rsplit(".", 1)[-1]
    parts = module.split(".")
    if module.startswith("config") or "management" in parts or "templatetags" in parts:
        return 2
    if last in ("models", "choices") or last.endswith("_models"):
        return 0
    if (last.startswith("admin") or last.endswith("_admin") or last in ("tasks", "api", "views", "urls", "apps")
            or last.endswith("_panels")):
        return 2
    return 1


# The one documented exception: the FSM declaration's permission callables are the access rule
# (casework.access), which reads the unit scope (accounts.selectors); neither imports a casework model.
DATA_MAY_IMPORT = {"casework.access", "accounts.selectors", "casework.text"}


def test_no_import_inside_functions():
    assert LOCAL == [], "imports inside functions (move them to the top; break the cycle instead):\n" + "\n".join(
        f"  {m}:{line} -> {t}" for m, line, t in LOCAL)


def test_no_import_cycles():
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(MODULES):
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_arrows_point_up(module):
    up = []
    for target in sorted(GRAPH[module]):
        if _layer(module) == 0 and _layer(target) > 0 and target not in DATA_MAY_IMPORT:
            up.append(target)
        elif _layer(module) == 1 and _layer(target) == 2:
            up.append(target)
    assert up == [], f"{module} (layer {_layer(module)}) imports a higher layer: {up}"


def test_the_checker_sees_real_imports():
    # The graph is not empty by accident: the admin imports the services, the services the models.
    assert "casework.services" in GRAPH["casework.admin"]
    assert "casework.models" in GRAPH["casework.services"]
    assert _layer("casework.deadline_models") == 0 and _layer("casework.escalation") == 1
