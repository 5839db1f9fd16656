"""The compiled build really is compiled (``make pytest-compiled`` runs the suite against it)."""

from __future__ import annotations

import importlib
import importlib.machinery
import os

import pytest

COMPILED = ("agentrm.kernel.scheduler.transitions", "agentrm.kernel.scheduler.gate",
            "agentrm.kernel.scheduler.records")


@pytest.mark.skipif(os.environ.get("AGENTRM_EXPECT_COMPILED") != "1",
                    reason="checks the compiled build; make pytest-compiled sets AGENTRM_EXPECT_COMPILED=1")
def test_hot_modules_are_c_extensions() -> None:
    """Each module setup.py compiles is imported from a C extension, not from its .py source."""
    for name in COMPILED:
        path = importlib.import_module(name).__file__
        assert path is not None and path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), (name, path)


def test_the_compiled_list_matches_setup_py() -> None:
    """The modules this test checks are exactly the ones setup.py compiles."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "setup.py"), encoding="utf-8") as f:
        text = f.read()
    listed = tuple("agentrm." + line.strip().strip('",').removeprefix("src/agentrm/").removesuffix(".py")
                   .replace("/", ".") for line in text.splitlines() if line.strip().startswith('"src/agentrm/'))
    assert listed == COMPILED
