"""The rooms' doors are one-way (DESIGN.md §8): checked on the source, so CI fails on a wrong import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cto_harness"

FORBIDDEN: dict[str, set[str]] = {
    # room -> rooms it must never import
    "core": {"cli", "proc", "evidence", "fixtures", "runner", "providers", "supply_chain", "model_server",
             "egress", "jobs", "selfcheck"},
    "proc": {"cli", "evidence", "fixtures", "runner", "providers", "supply_chain", "model_server", "jobs",
             "selfcheck"},
    "evidence": {"cli", "runner", "providers", "supply_chain", "model_server", "jobs", "selfcheck"},
    "fixtures": {"cli", "runner", "providers", "supply_chain", "model_server", "jobs", "selfcheck"},
    "providers": {"cli", "runner", "jobs", "selfcheck", "proc"},
    "supply_chain": {"cli", "runner", "providers", "model_server", "jobs", "selfcheck"},
    "model_server": {"cli", "runner", "providers", "supply_chain", "jobs", "selfcheck"},
    "egress": {"cli", "runner", "providers", "supply_chain", "jobs", "selfcheck"},
    "runner": {"cli", "jobs", "selfcheck"},
    "jobs": {"cli", "selfcheck"},
    "selfcheck": {"cli"},
}
SPAWNERS = {"subprocess", "multiprocessing", "pty"}
SPAWN_CALLS = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve",
               "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve"}
# Child-side scripts: they run as the agent / the fake `ca`, never inside the harness.
CHILD_SCRIPTS = {"providers/fake/_agent.py", "providers/case/_synthetic_ca_main.py", "egress/_forwarder.py"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "builtin" not in p.parts)


def _room(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def test_rooms_import_only_through_their_doors() -> None:
    problems: list[str] = []
    for path in _modules():
        room, rel = _room(path), path.relative_to(SRC)
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] != "cto_harness" or len(parts) < 2:
                continue
            target = parts[1]
            if target in FORBIDDEN.get(room, set()):
                problems.append(f"{rel}:{line}: room {room!r} imports {name}")
            private = next((p for p in parts[2:] if p.startswith("_") and not p.startswith("__")), None)
            if private is not None and target != room:
                problems.append(f"{rel}:{line}: reaches into another room's private module {name}")
    assert not problems, "\n".join(problems)


def test_only_proc_starts_processes() -> None:
    problems: list[str] = []
    for path in _modules():
        rel = path.relative_to(SRC).as_posix()
        if _room(path) == "proc" or rel in CHILD_SCRIPTS:
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                problems.extend(f"{rel}:{node.lineno}: imports {n}" for n in names if n.split(".")[0] in SPAWNERS)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
                  and node.func.attr in SPAWN_CALLS):
                problems.append(f"{rel}:{node.lineno}: os.{node.func.attr}()")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_exists_or_is_planned(room: str) -> None:
    planned = {"egress", "jobs"}
    assert (SRC / room).is_dir() or room in planned
