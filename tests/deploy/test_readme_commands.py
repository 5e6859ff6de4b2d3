"""Every `trainbot` command the README shows can be run as written from a fresh checkout:
`trainbot` is installed into `.venv`, not onto anyone's PATH, so the README writes it as
`./dev cli …` (or `.venv/bin/trainbot …`), and `./dev cli` itself works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RUNNABLE = ("./dev cli ", ".venv/bin/trainbot ")


def code_texts(text: str) -> list[str]:
    """Each fenced block's lines and each inline code span (which may wrap a line)."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    lines = [line for block in fenced for line in block.splitlines()]
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return lines + [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def unrunnable(text: str) -> list[str]:
    """Code in ``text`` that runs `trainbot <something>` as a bare command."""
    bad = []
    for code in code_texts(text):
        for found in re.finditer(r"(?<![\w.-])trainbot +(?=[a-z<-])", code):
            before = code[: found.start()]
            if not (before.endswith(".venv/bin/") or before.endswith("./dev cli ")):
                bad.append(code.strip())
    return bad


def test_the_check_catches_a_bare_trainbot_command_and_accepts_the_runnable_forms():
    text = "run `trainbot stats --all`, or\n```\ntrainbot list\n./dev cli list   .venv/bin/trainbot list\n```\n"
    assert unrunnable(text) == ["trainbot list", "trainbot stats --all"]
    assert unrunnable("the `trainbot` CLI; `--stack-name trainbot   # offline`") == []


def test_every_trainbot_command_in_the_readme_is_written_in_a_runnable_form():
    assert unrunnable(README) == []
    assert any(code.startswith(RUNNABLE) for code in code_texts(README))


def test_dev_cli_runs_the_trainbot_cli_and_knows_each_command_the_readme_names():
    # The venv this test runs in is the one `./dev` made (CI: .venv); point `./dev` at it.
    env = {**os.environ, "TRAINBOT_VENV": sys.prefix}
    done = subprocess.run([str(ROOT / "dev"), "cli", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: trainbot ")
    listed = set(re.findall(r"^    (\w+) ", done.stdout, flags=re.M))
    named = {m for code in code_texts(README) for m in re.findall(r"\./dev cli (\w+)", code)}
    assert named and named <= listed, f"the README names commands the CLI lacks: {sorted(named - listed)}"
