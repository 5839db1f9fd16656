"""Every public module, class, function and method of agentrm has a docstring."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import agentrm


def module_doc(module: ModuleType) -> str | None:
    """The module's docstring; for a module compiled by mypyc (which drops it), the one
    in the .py source shipped beside the extension."""
    if module.__doc__ or not module.__file__ or module.__file__.endswith(".py"):
        return module.__doc__
    source = Path(module.__file__).with_name(module.__name__.rpartition(".")[2] + ".py")
    return ast.get_docstring(ast.parse(source.read_text(encoding="utf-8"))) if source.exists() else None


def undocumented() -> list[str]:
    """Dotted names of public objects defined in agentrm that lack a docstring."""
    missing: list[str] = []
    for info in pkgutil.walk_packages(agentrm.__path__, "agentrm."):
        module = importlib.import_module(info.name)
        if not module_doc(module):
            missing.append(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != info.name:
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not obj.__doc__:
                missing.append(f"{info.name}.{name}")
            if inspect.isclass(obj):
                missing += [f"{info.name}.{name}.{m}" for m, f in vars(obj).items()
                            if not m.startswith("_") and inspect.isfunction(f) and not f.__doc__]
    return missing


def test_every_public_name_has_a_docstring() -> None:
    """No public module, class, function or method of the package is undocumented."""
    assert undocumented() == []
