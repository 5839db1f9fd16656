"""Packaging and import-path guards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["kernel", "specs", "adapters"])
def test_plain_import_is_refused_loudly(name: str) -> None:
    """Importing a top-level folder as a plain package fails with a message, never a silent second copy."""
    proc = subprocess.run(
        [sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert f"agentrm.{name}" in proc.stderr


def test_package_imports_as_agentrm() -> None:
    """The three subpackages import under the agentrm name and ship py.typed."""
    import agentrm
    import agentrm.adapters
    import agentrm.kernel
    import agentrm.specs

    assert agentrm.kernel.__name__ == "agentrm.kernel"
    assert (Path(agentrm.__file__).parent / "py.typed").exists()
