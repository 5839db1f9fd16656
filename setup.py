"""Build script. Metadata lives in pyproject.toml; this file only adds the optional compiled build.

By default agentrm installs as pure Python. With ``AGENTRM_MYPYC=1`` the scheduler's hot
modules (``kernel/scheduler/transitions.py``, ``gate.py`` and ``records.py``) are compiled
to C extensions by mypyc (part of mypy) -- the same source, type-checked, compiled; the
.py files ship beside the extensions. mypyc type-checks the package while it compiles, so
the build environment needs mypy, a C compiler and agentrm's own dependencies: install
them first, then build without isolation (``make venv-compiled`` does exactly this)::

    pip install 'setuptools>=77' 'mypy>=1.10' .          # the dependencies (and a pure copy)
    AGENTRM_MYPYC=1 pip install --no-build-isolation --no-deps --force-reinstall .

An editable install is always pure Python: CrossHair and coverage need the source.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

COMPILED = (
    "src/agentrm/kernel/scheduler/transitions.py",
    "src/agentrm/kernel/scheduler/gate.py",
    "src/agentrm/kernel/scheduler/records.py",
)


def _ext_modules() -> list[object]:
    flag = os.environ.get("AGENTRM_MYPYC", "")
    if flag not in ("", "0", "1"):
        sys.exit(f"setup.py: AGENTRM_MYPYC must be 0 or 1, not {flag!r}")
    if flag != "1":
        return []
    if any(cmd in sys.argv for cmd in ("editable_wheel", "develop")):
        sys.exit("setup.py: AGENTRM_MYPYC=1 builds a compiled wheel; an editable install stays pure Python "
                 "(unset AGENTRM_MYPYC, or install without -e)")
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.exit("setup.py: AGENTRM_MYPYC=1 needs mypy in the build environment: "
                 "pip install 'setuptools>=77' 'mypy>=1.10', then build with --no-build-isolation")
    return list(mypycify(list(COMPILED), opt_level="3"))


setup(ext_modules=_ext_modules())
