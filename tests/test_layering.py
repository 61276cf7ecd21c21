"""The import rules the package docstrings state, checked on the source (``ast``, nothing imported):

- ``lineage`` and ``feature_repo`` never import ``service`` (and ``lineage`` never imports FastAPI);
- a capability package (``service.training``, ``service.online``, ``service.materialization``) never
  imports the HTTP shell (routers, app, CLI, deps, errors), only the shared shell modules;
- a capability package imports another one only through the names in that package's ``PUBLIC``.
"""

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
CAPABILITIES = ("service.training", "service.online", "service.materialization", "service.monitoring")
SHARED_SHELL = {
    "service.settings",
    "service.clock",
    "service.run_events",
    "service.value_types",
    "service.registry",
    "service.intents",
    "service.storage",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[str, set[str], int]]:
    """(imported module, names taken from it, line) for every import in the file, nested ones included."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, set(), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, {alias.name for alias in node.names}, node.lineno


def sources(package: str) -> list[Path]:
    return sorted((PROJECT / package.replace(".", "/")).rglob("*.py"))


def capability_of(module: str) -> str | None:
    return next((c for c in CAPABILITIES if module == c or module.startswith(c + ".")), None)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("package", ["lineage", "feature_repo"])
def test_domain_packages_never_import_service(package: str) -> None:
    offenders = [
        f"{path.relative_to(PROJECT)}:{line} imports {target}"
        for path in sources(package)
        for target, _, line in imports(path)
        if within(target, "service") or (package == "lineage" and within(target, "fastapi"))
    ]
    assert offenders == []


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_capability_packages_import_one_way(capability: str) -> None:
    public = {c: importlib.import_module(c).PUBLIC for c in CAPABILITIES}
    offenders = []
    for path in sources(capability):
        here = f"{path.relative_to(PROJECT)}"
        for target, names, line in imports(path):
            if not within(target, "service"):
                continue
            other = capability_of(target)
            if other == capability:
                continue
            if other is None:
                if target not in SHARED_SHELL:
                    offenders.append(f"{here}:{line} imports the shell module {target}")
            elif not names or not names <= public[other].get(target, frozenset()):
                offenders.append(f"{here}:{line} imports {sorted(names) or target} from {target}, not in PUBLIC")
    assert offenders == []


def test_public_names_exist() -> None:
    for capability in CAPABILITIES:
        for module, names in importlib.import_module(capability).PUBLIC.items():
            assert capability_of(module) == capability
            missing = [n for n in names if not hasattr(importlib.import_module(module), n)]
            assert missing == [], f"{module} has no {missing}"


def test_every_capability_package_says_what_it_owns() -> None:
    for capability in CAPABILITIES:
        doc = importlib.import_module(capability).__doc__ or ""
        for path in (PROJECT / capability.replace(".", "/")).iterdir():
            if path.suffix == ".py" and path.name != "__init__.py" or (path / "__init__.py").exists():
                assert f"``{path.name if path.suffix else path.name + '/'}``" in doc, (capability, path.name)


def test_the_client_stands_alone() -> None:
    """``feastline`` (the Python client) needs httpx, pandas and pyarrow only: never the service's packages."""
    offenders = [
        f"{path.relative_to(PROJECT)}:{line} imports {target}"
        for path in sources("feastline")
        for target, _, line in imports(path)
        if any(within(target, p) for p in ("service", "lineage", "feature_repo", "fastapi", "feast"))
    ]
    assert offenders == []
