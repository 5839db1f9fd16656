"""The README's kernel quick start runs and prints exactly what the README shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quick_start_output_matches_readme() -> None:
    """Executing the first python block of the README prints the block that follows it."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"```python\n(.*?)```\n\nprints what the kernel decided:\n\n```\n(.*?)```", text, re.S)
    assert m is not None, "README quick start (code block + printed output) not found"
    code, expected = m.group(1), m.group(2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == expected
