"""The kernel does no I/O: no module under kernel/ imports I/O, clock, randomness,
threading or logging modules (checked on the parsed imports, not on text)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KERNEL = Path(__file__).resolve().parent.parent / "kernel"
BANNED = frozenset({
    "asyncio", "sqlite3", "sqlite_utils", "time", "random", "secrets", "uuid", "os",
    "sys", "io", "logging", "threading", "multiprocessing", "concurrent", "socket",
    "subprocess", "datetime", "pathlib", "shutil", "tempfile", "signal", "select",
    "selectors", "http", "urllib", "httpx", "pickle", "builtins", "importlib",
})


def banned_imports(source: str) -> list[str]:
    """Top-level names of banned modules imported anywhere in ``source``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in BANNED]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in BANNED:
                found.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in {"__import__", "open", "print", "input", "exec", "eval"}:
                found.append(f"{node.func.id}()")
    return found


def test_checker_detects_banned_imports() -> None:
    """The checker itself flags each kind of forbidden import (it can fail)."""
    assert banned_imports("import time") == ["time"]
    assert banned_imports("from os import path") == ["os"]
    assert banned_imports("import asyncio.tasks as t") == ["asyncio.tasks"]
    assert banned_imports("def f():\n    import random\n") == ["random"]
    assert banned_imports("x = open('f')") == ["open()"]
    assert banned_imports("import attrs\nfrom typing import Final") == []


@pytest.mark.parametrize("path", sorted(KERNEL.rglob("*.py")), ids=lambda p: str(p.relative_to(KERNEL)))
def test_kernel_module_is_pure(path: Path) -> None:
    """A kernel module imports no I/O, clock, randomness, threading or logging module."""
    assert banned_imports(path.read_text(encoding="utf-8")) == []


def test_kernel_has_modules() -> None:
    """The purity check is not vacuous: the kernel has source files to check."""
    assert len(list(KERNEL.rglob("*.py"))) >= 3
