"""ruff and mypy over the project, as part of the suite (so `./dev test` and CI run them).

Their configuration is `ruff.toml` and `mypy.ini` at the root: mypy is strict on the domain, the
services and the ports, and checks untyped code everywhere else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_to_complain_about():
    done = _run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_no_type_error():
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_checkers_are_configured_to_fail_on_a_real_mistake(tmp_path):
    """Both tools, with this project's configuration, refuse a file with an obvious error (so
    the two tests above can fail)."""
    broken = tmp_path / "broken.py"
    broken.write_text("import os\n\n\ndef f(x: int) -> str:\n    return x\n", encoding="utf-8")
    assert _run("ruff", "check", "--no-cache", "--config", str(ROOT / "ruff.toml"), str(broken)).returncode != 0
    assert _run("mypy", "--config-file", str(ROOT / "mypy.ini"), str(broken)).returncode != 0
