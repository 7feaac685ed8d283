"""The layers drawn in DESIGN.md, held by the code: what imports what, and who names a channel.

An arrow only points down: faces (CLI, API, demo) and tasks over the flow, the flow over the ledger and
the adapters, everything over the core words. Checked from the source (``ast``), so a violation fails
here before it becomes a habit; each rule is also shown to catch a planted violation.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from settings import PROJECT_DIR

PACKAGES = ("dispatcher", "channels", "sandbox")
TOP_LEVEL = ("settings.py", "worker.py")
# The core words: what adapters may import from the dispatcher.
CORE = {
    "dispatcher.errors",
    "dispatcher.words",
    "dispatcher.items",
    "dispatcher.geometry",
    "dispatcher.rendering",
    "settings",
}
# Where Celery and kombu may be named: the task module and the worker process's entry.
QUEUE_AWARE = {"dispatcher.tasks", "worker"}
# Faces over the sandbox may name channels and emulators: they describe what a person sees. So does the
# status page, which draws each channel as its readers see it (a sign, a phone, a post, an article).
FACES = {"dispatcher.demo", "dispatcher.sandboxes", "dispatcher.web.page"}
# What serves HTTP: the web face and what runs it. The flow below never names a web framework or a face.
WEB = ("dispatcher.web", "dispatcher.serving", "dispatcher.cli", "dispatcher.demo")
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn", "dispatcher.web", "dispatcher.cli")
CHANNEL_NAMES = {"website", "sms", "display", "microblog"}


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    for file in TOP_LEVEL:
        if (root / file).exists():
            found[file.removesuffix(".py")] = root / file
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports, as dotted names (internal ones resolved to known modules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base != name:  # a package naming its own modules (``from . import items``)
                found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return found


def violations(root: Path) -> list[str]:
    found = modules(root)
    known = set(found)
    graph = {name: imports(name, path, known) for name, path in found.items()}
    problems: list[str] = []
    for name, targets in graph.items():
        internal = {t for t in targets if t in known}
        if name.startswith("sandbox"):
            problems += [f"{name} imports product code {t}" for t in internal if not t.startswith("sandbox")]
        if name.startswith("channels"):
            problems += [
                f"adapter {name} imports {t} (the flow, the ledger or a face)"
                for t in internal
                if t.startswith("dispatcher") and t not in CORE
            ]
        if name not in QUEUE_AWARE:
            problems += [
                f"{name} imports {t} (only the tasks know the queue)"
                for t in targets
                if t.split(".")[0] in ("celery", "kombu")
            ]
        if name.startswith("dispatcher") and not name.startswith(WEB):
            problems += [
                f"{name} imports {t} (the flow knows no face)"
                for t in targets
                if t.split(".")[0] in WEB_FRAMEWORKS or t.startswith(WEB_FRAMEWORKS)
            ]
    problems += [f"import circle: {' -> '.join(cycle)}" for cycle in cycles(graph, known)]
    for name, path in found.items():
        if name.startswith("dispatcher") and name not in FACES and not name.startswith("dispatcher.cli"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and node.value in CHANNEL_NAMES:
                    problems.append(f"{name}:{node.lineno} names the channel {node.value!r}")
    return sorted(problems)


def cycles(graph: dict[str, set[str]], known: set[str]) -> list[list[str]]:
    """One path per import circle between files (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, set()) & known):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_code_keeps_its_layers() -> None:
    assert violations(PROJECT_DIR) == []


def plant(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_each_rule_catches_a_planted_violation(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "settings.py": "",
            "dispatcher/__init__.py": "",
            "dispatcher/ledger.py": "",
            "dispatcher/outbox.py": "from celery import Celery\nfrom dispatcher import delivery\n",
            "dispatcher/delivery.py": "from dispatcher.outbox import due\nif x == 'sms':\n    pass\n",
            "channels/__init__.py": "",
            "channels/fax.py": "from dispatcher.ledger import record\n",
            "sandbox/__init__.py": "",
            "sandbox/fax.py": "from channels.fax import FaxChannel\n",
        },
    )
    found = "\n".join(violations(root))
    assert "sandbox.fax imports product code channels.fax" in found
    assert "adapter channels.fax imports dispatcher.ledger" in found
    assert "dispatcher.outbox imports celery" in found
    assert "import circle: dispatcher.delivery -> dispatcher.outbox -> dispatcher.delivery" in found
    assert "dispatcher.delivery:2 names the channel 'sms'" in found


@pytest.mark.parametrize("package", ["dispatcher", "channels", "sandbox", "top level"])
def test_every_file_imports_on_its_own(package: str) -> None:
    """Each module in a fresh interpreter: an import that works only after another one is a hidden circle."""
    top = [file.removesuffix(".py") for file in TOP_LEVEL]
    names = [name for name in modules(PROJECT_DIR) if name.split(".")[0] == package or name in top]
    names = [name for name in names if (name in top) == (package == "top level")]
    # Alembic's scripts are run by Alembic, inside its context, never imported.
    names = [name for name in names if not name.startswith("dispatcher.migrations.")]

    def load(name: str) -> tuple[str, int, str]:
        run = subprocess.run(
            [sys.executable, "-c", f"import {name}"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return name, run.returncode, run.stderr[-500:]

    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [(name, err) for name, code, err in pool.map(load, names) if code != 0]
    assert names and failed == []
