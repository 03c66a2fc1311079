"""The package's shape, held: each folder imports only the layers below it, the domain stays pure, nothing
forms an import cycle, and the deployed package never reaches into the local-run harness (README, Layout)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
# Lowest first. A module may import its own part and any lower layer, never a higher one.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("postback_relay.core", "postback_relay.env", "postback_relay.web"),
    ("postback_relay.networks", "postback_relay.platforms", "postback_relay.aws", "postback_relay.reconcile"),
    ("postback_relay.settings",),
    ("postback_relay.relay",),
    ("postback_relay.runtime",),
    ("postback_relay.handlers",),
    ("postback_relay.ops",),
    ("postback_relay_dev",),
)
# Sideways imports between the parts of one layer that the design allows (and no others).
ALLOWED_SIDEWAYS = {
    ("postback_relay.networks", "postback_relay.env"),
    ("postback_relay.reconcile", "postback_relay.networks"),  # the environment's HTTPS session, built one way
}
THIRD_PARTY_IN_CORE = ("boto3", "botocore", "requests", "urllib3", "aws_lambda_powertools")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every module of both packages and what it imports, lazy (in-function) and TYPE_CHECKING ones included."""
    graph: dict[str, set[str]] = {}
    for path in sorted([*SRC.glob("postback_relay/**/*.py"), *SRC.glob("postback_relay_dev/**/*.py")]):
        name = _module_name(path)
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[name] = imported
    return graph


GRAPH = _imports()


def _part(module: str) -> str | None:
    """The layer part a module belongs to (the longest matching prefix)."""
    matches = [p for layer in LAYERS for p in layer if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def _layer(part: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if part in layer)


def _ours(imported: set[str]) -> set[str]:
    """The imported names that are modules of ours (``from x import y`` names y only when y is a module)."""
    return {name for name in imported if name in GRAPH}


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in GRAPH if m not in ("postback_relay",) and _part(m) is None] == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_higher_layer_or_a_sibling_part(module: str) -> None:
    part = _part(module)
    if part is None:
        return  # the package root: its version only
    wrong = []
    for target in _ours(GRAPH[module]):
        target_part = _part(target)
        if target_part is None or target_part == part:
            continue
        if _layer(target_part) > _layer(part):
            wrong.append(f"{target} (higher layer)")
        elif _layer(target_part) == _layer(part) and (part, target_part) not in ALLOWED_SIDEWAYS:
            wrong.append(f"{target} (same layer)")
    assert wrong == [], f"{module} imports {wrong}"


def test_the_deployed_package_never_imports_the_local_run() -> None:
    offenders = {m for m, imported in GRAPH.items() if m.startswith("postback_relay.") or m == "postback_relay"}
    assert [m for m in sorted(offenders) if any(i.startswith("postback_relay_dev") for i in GRAPH[m])] == []


def test_the_core_imports_no_sdk_nor_http_client() -> None:
    core = [m for m in GRAPH if m.startswith("postback_relay.core")]
    assert core
    for module in core:
        assert not [i for i in GRAPH[module] if i.split(".")[0] in THIRD_PARTY_IN_CORE], module


def test_importing_the_core_loads_no_sdk_nor_http_client() -> None:
    """The same, as Python sees it: what importing every core module actually loads."""
    modules = ", ".join(sorted(m for m in GRAPH if m.startswith("postback_relay.core.")))
    code = f"import sys, {modules}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True, check=True
    ).stdout
    assert not [name for name in THIRD_PARTY_IN_CORE if f"'{name}'" in loaded], loaded


def test_there_is_no_import_cycle() -> None:
    edges = {module: _ours(imported) - {module} for module, imported in GRAPH.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " → ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for target in sorted(edges[module]):
            # a package's __init__ importing its own submodule is how a package exports; not a cycle of design
            if not target.startswith(module + "."):
                visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)
