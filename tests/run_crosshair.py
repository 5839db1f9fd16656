"""Run CrossHair over every module of agentrm that states PEP 316 contracts.

A bounded CI budget: each condition gets ``--per_condition_timeout`` seconds and the
whole run is wrapped in a wall-clock timeout. The outcome is classified from
CrossHair's output, so that a crash inside CrossHair is never reported as a
counterexample, and a counterexample is never mistaken for a crash:

* exit 0 -- every condition was explored and none failed;
* exit 1 -- CrossHair found a counterexample (the ``error:`` lines are printed);
* exit 3 -- CrossHair itself crashed, could not import the code, or ran out of time;
* exit 4 -- no contracts were found at all (a check that cannot fail is a defect).

Modules are discovered by scanning ``src/agentrm`` for ``post:`` clauses and are
passed to CrossHair by module name (see TOOLING notes in the README: paths would
import the code a second time).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "agentrm"
PER_CONDITION_S = float(os.environ.get("AGENTRM_CROSSHAIR_PER_CONDITION_S", "4"))
TOTAL_S = float(os.environ.get("AGENTRM_CROSSHAIR_TOTAL_S", "420"))

_CONDITION = re.compile(r"^(?P<where>.+?):(?P<line>\d+): (?P<level>error|info|warning): (?P<msg>.*)$")
_CRASH_MARKERS = ("CrosshairInternal", "Traceback (most recent call last)", "Could not import")


def contract_modules() -> list[str]:
    """Module names (agentrm.*) of every source file that contains a ``post:`` clause."""
    names: list[str] = []
    for sub in ("kernel", "specs", "adapters"):
        for path in sorted((PACKAGE / sub).rglob("*.py")):
            if re.search(r"^\s*post(\[[^\]]*\])?:", path.read_text(encoding="utf-8"), re.M):
                rel = path.relative_to(PACKAGE).with_suffix("")
                parts = list(rel.parts)
                if parts[-1] == "__init__":
                    parts.pop()
                names.append(".".join(["agentrm", *parts]))
    return names


def main() -> int:
    modules = contract_modules()
    if not modules:
        print("crosshair: no module under src/agentrm states a contract", file=sys.stderr)
        return 4
    cmd = [
        sys.executable, "-m", "crosshair", "check", *modules,
        "--per_condition_timeout", str(PER_CONDITION_S), "--report_all",
    ]
    print("crosshair: checking", ", ".join(modules), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TOTAL_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        print(f"crosshair: CRASH-OR-BUDGET: no result within {TOTAL_S:.0f} s", file=sys.stderr)
        return 3
    output = proc.stdout + proc.stderr
    confirmed = explored = 0
    counterexamples: list[str] = []
    crashes: list[str] = []
    for line in output.splitlines():
        m = _CONDITION.match(line)
        if m is None:
            continue
        if m["level"] == "info":
            explored += 1
            confirmed += "Confirmed" in m["msg"]
        elif m["level"] == "error":
            (crashes if any(k in m["msg"] for k in _CRASH_MARKERS) else counterexamples).append(line)
    if any(marker in output for marker in _CRASH_MARKERS):
        crashes.append(output)
    if counterexamples:
        print("crosshair: COUNTEREXAMPLE(S):", *counterexamples, sep="\n  ", file=sys.stderr)
        return 1
    if crashes or proc.returncode != 0:
        print(f"crosshair: CRASH (exit {proc.returncode}), not a counterexample:", file=sys.stderr)
        print(output, file=sys.stderr)
        return 3
    if explored == 0:
        print("crosshair: ran but reported no condition; refusing to pass vacuously", file=sys.stderr)
        return 4
    print(f"crosshair: {explored} conditions explored, {confirmed} confirmed over all paths, "
          f"no counterexample (budget {PER_CONDITION_S:g} s per condition)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
