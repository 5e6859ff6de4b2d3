"""Build the Lambda artifacts with `sam build` exactly as the deploy guide does, and check them.

    python -m infra.deploy.artifacts                 # build arm64 (as deployed), print sizes, check budgets
    python -m infra.deploy.artifacts --arch x86_64   # the twin this machine can run
    python -m infra.deploy.artifacts --print-python  # the python3.13 `sam build` needs (or exit 1)
    python -m infra.deploy.artifacts --compile .aws-sam/build   # the deploy guide's step after `sam build`

`sam build` (the AWS SAM CLI from pyproject's ``sam`` dependency group, in ``.venv-sam``; no
container) reads each function's ``CodeUri`` folder (infra/deploy/functions/<name>: links to
``bot/`` and ``backend/`` plus the generated requirements.txt) and pip-installs that
requirements.txt for the template's runtime and architecture next to the source. It needs a
``python3.13`` on PATH, the template's runtime; this module finds one (``TRAINBOT_PYTHON313``,
then pyenv's versions, then PATH) and fails with a clear message where there is none.

The template says arm64; a machine of another architecture cannot run those wheels, so the
artifact test also builds a *twin*: the same template with ``Architectures: [x86_64]``, built
from the same sources, and runs that, while the arm64 build's sizes are checked against the
budgets. Builds are cached under ``.aws-sam/artifacts/`` by a hash of everything they read.

After `sam build`, every module of every function is compiled to bytecode by the runtime's own
interpreter (:func:`compile_bytecode`): Lambda's ``/var/task`` is read-only, so an artifact
without ``__pycache__`` compiles every module it imports on every cold start (most of the bot's
first request). The ``.pyc`` files are *unchecked-hash* ones: SAM zips every file with a 1980
timestamp, so timestamp-validated ``.pyc`` files would never match their source and be
recompiled; an unchecked-hash ``.pyc`` is used as is, which is right for a deployment package
nobody edits in place (`sam build` makes a new one from source each time).
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.deploy.requirements import FUNCTIONS_DIR, SOURCE_PACKAGES
from infra.template import TEMPLATE_PATH, load_template

ROOT = TEMPLATE_PATH.parent
SAM_VENV = Path(os.environ.get("TRAINBOT_SAM_VENV", ROOT / ".venv-sam"))
CACHE = ROOT / ".aws-sam" / "artifacts"
MB = 1024 * 1024
# Unzipped size limits (Lambda's own limit is 250 MB); the bot answers Slack within 3 s of a
# cold start, the scheduled functions run every minute. The chart function carries matplotlib
# and numpy so that no other does: Lambda's limit is its budget.
BUDGETS_MB = {"BotFunction": 60, "LauncherFunction": 50, "MonitorFunction": 50, "ChartFunction": 250}
DEFAULT_BUDGET_MB = 250
# Never in a production artifact: test code, benchmarks, the local stand-ins, and boto3 (the
# runtime provides it).
FORBIDDEN_TOP_LEVEL = frozenset({"tests", "bench", "infra", "boto3", "botocore", "moto"})
# The chart stack: in the chart function's artifact only.
CHART_STACK = frozenset({"matplotlib", "numpy", "PIL", "contourpy", "kiwisolver", "fontTools"})
CHART_FUNCTION = "ChartFunction"
_ARCH_LINE = re.compile(r"^(\s*Architectures:\s*)\[(\w+)\]\s*$", re.M)


class ToolchainMissing(RuntimeError):
    """The SAM CLI or the template's Python runtime is not installed here."""


@dataclass(frozen=True)
class Build:
    architecture: str
    directory: Path  # .aws-sam/artifacts/<arch>-<hash>/build: one folder per function
    functions: dict[str, Path]

    def sizes(self) -> dict[str, int]:
        return {name: tree_size(path) for name, path in self.functions.items()}


def template_runtime() -> str:
    """e.g. "python3.13" (Globals.Function.Runtime)."""
    return load_template()["Globals"]["Function"]["Runtime"]


def template_architecture() -> str:
    return load_template()["Globals"]["Function"]["Architectures"][0]


def machine_architecture() -> str:
    import platform

    return {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "x86_64")


def find_python(runtime: str | None = None) -> Path:
    """The interpreter of the template's runtime, e.g. python3.13; ToolchainMissing if none."""
    runtime = runtime or template_runtime()
    version = runtime.removeprefix("python")
    candidates: list[str] = []
    if os.environ.get("TRAINBOT_PYTHON313") and version == "3.13":
        candidates.append(os.environ["TRAINBOT_PYTHON313"])
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(found)
    for candidate in candidates:
        try:
            answer = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                    capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if answer.returncode == 0 and answer.stdout.strip() == version:
            return Path(candidate)
    raise ToolchainMissing(
        f"{runtime} (the template's runtime) is not installed here: `sam build` and the artifact test need it. "
        f"Install Python {version} (e.g. `pyenv install {version}`), or point TRAINBOT_PYTHON313 at it."
    )


def sam_executable() -> Path:
    sam = SAM_VENV / "bin" / "sam"
    if not sam.exists():
        raise ToolchainMissing(f"the AWS SAM CLI is not installed in {SAM_VENV}: run `./dev test` (it installs pyproject's `sam` group there)")
    return sam


def runtime_boto3(python: Path | None = None) -> Path:
    """A boto3 of the runtime's own (the Lambda runtime provides boto3; artifacts do not carry
    it): ``pip install --target`` of the project's boto3 pin, done by ./dev for python3.13."""
    target = SAM_VENV / f"lambda-runtime-{template_runtime()}"
    if not (target / "boto3").is_dir():
        raise ToolchainMissing(f"no boto3 for {template_runtime()} in {target}: run `./dev test` (it installs {boto3_pin()} there)")
    return target


def boto3_pin() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return next(d for d in dependencies if d.lower().startswith("boto3=="))


def sam_version() -> str:
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["dependency-groups"]
    return next(r for r in groups["sam"] if r.startswith("aws-sam-cli=="))


def twin_template(architecture: str) -> str:
    """template.yaml's text with every ``Architectures: [...]`` set to ``architecture``."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    twin, count = _ARCH_LINE.subn(lambda m: f"{m.group(1)}[{architecture}]", text)
    if count == 0:
        raise ValueError("template.yaml declares no `Architectures: [...]` line to build a twin from")
    return twin


def source_hash(architecture: str) -> str:
    """Everything a build reads: the template, the requirements, every source file, the SAM CLI
    version, the architecture and this module (the steps after `sam build`)."""
    digest = hashlib.sha256()
    digest.update(f"{architecture}\n{sam_version()}\n".encode())
    digest.update(Path(__file__).read_bytes())  # how it is built (e.g. the bytecode step) is an input too
    digest.update(TEMPLATE_PATH.read_bytes())
    for path in sorted(FUNCTIONS_DIR.glob("*/requirements.txt")):
        digest.update(path.read_bytes())
    for package in SOURCE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time (pytest-xdist workers share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(architecture: str, *, log: bool = False) -> Build:
    """`sam build` for ``architecture`` (the template's own or a twin), cached by source hash."""
    key = f"{architecture}-{source_hash(architecture)}"
    where = CACHE / key
    done = where / ".complete"
    with _locked(CACHE / ".lock"):
        if not done.exists():
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir(parents=True)
            _sam_build(architecture, where, log=log)
            compile_bytecode(where / "build")
            done.write_text(key)
            for stale in CACHE.iterdir():
                if stale.is_dir() and stale.name.startswith(f"{architecture}-") and stale.name != key:
                    shutil.rmtree(stale, ignore_errors=True)
    directory = where / "build"
    functions = {p.name: p for p in sorted(directory.iterdir()) if p.is_dir()}
    return Build(architecture, directory, functions)


def sam_build_command(architecture: str, where: Path) -> list[str]:
    """The command the deploy guide's ``sam build`` amounts to (no container)."""
    command = [str(sam_executable()), "build", "--build-dir", str(where / "build")]
    if architecture != template_architecture():
        twin = where / "template.yaml"
        twin.write_text(twin_template(architecture), encoding="utf-8")
        command += ["--template-file", str(twin), "--base-dir", str(ROOT)]
    else:
        command += ["--template-file", str(TEMPLATE_PATH)]
    return command


def _sam_build(architecture: str, where: Path, *, log: bool) -> None:
    python = find_python()
    env = {
        **os.environ,
        # sam build looks for the runtime's interpreter on PATH (aws-lambda-builders).
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
    }
    command = sam_build_command(architecture, where)
    answer = subprocess.run(command, cwd=ROOT, env=env, capture_output=not log, text=True, timeout=900)
    if answer.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({answer.returncode}):\n{answer.stdout}\n{answer.stderr}")


def compile_bytecode(build_dir: Path, python: Path | None = None) -> None:
    """Compile every ``.py`` under ``build_dir`` (a `sam build` output) for the runtime's Python,
    unoptimized (Lambda runs ``python`` without ``-O``) and unchecked-hash (see the module doc)."""
    python = python or find_python()
    command = [str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
               "-o", "0", str(build_dir)]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=600)
    # compileall exits 1 when any file fails; a package's stray file for another Python version
    # (none today) must not pass silently.
    if answer.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({answer.returncode}):\n{answer.stdout}\n{answer.stderr}")


_CHECK_BYTECODE = """
import importlib.util, json, pathlib, sys
root, missing = pathlib.Path(sys.argv[1]), []
for source in sorted(root.rglob("*.py")):
    compiled = source.parent / "__pycache__" / (source.stem + "." + sys.implementation.cache_tag + ".pyc")
    header = compiled.read_bytes()[:16] if compiled.exists() else b""
    # PEP 552: magic, flags (0b01: hash-based, not checked), the source's hash (keyed by the magic).
    if (header[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(header[4:8], "little") != 0b01
            or header[8:16] != importlib.util.source_hash(source.read_bytes())):
        missing.append(str(source.relative_to(root)))
print(json.dumps(missing))
"""


def modules_without_bytecode(function_dir: Path, python: Path | None = None) -> list[str]:
    """The ``.py`` files of a built function with no valid unchecked-hash ``.pyc`` for the
    runtime's Python (checked by that interpreter: the magic number and the hash are its own)."""
    python = python or find_python()
    answer = subprocess.run([str(python), "-I", "-c", _CHECK_BYTECODE, str(function_dir)],
                            capture_output=True, text=True, timeout=300, check=True)
    return list(json.loads(answer.stdout))


def tree_size(path: Path) -> int:
    """Unzipped size: the bytes of every file under ``path`` (what Lambda's 250 MB limit counts)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def check(built: Build) -> list[str]:
    """Budget and content problems of a build (empty when it may ship)."""
    problems = []
    for name, path in built.functions.items():
        size = tree_size(path)
        budget = BUDGETS_MB.get(name, DEFAULT_BUDGET_MB)
        if size > budget * MB:
            problems.append(f"{name} ({built.architecture}) is {size / MB:.1f} MB unzipped, over its {budget} MB budget")
        top = {p.name for p in path.iterdir()}
        forbidden_here = FORBIDDEN_TOP_LEVEL | (CHART_STACK if name != CHART_FUNCTION else frozenset())
        for forbidden in sorted(top & forbidden_here):
            problems.append(f"{name} ({built.architecture}) ships {forbidden}/")
        # Ours, at the top or inside our packages: a library's own tests (numpy's, matplotlib's
        # in the chart function) are the library's business.
        ours = [path / package for package in SOURCE_PACKAGES if (path / package).is_dir()]
        for leaked in ("tests", "bench", "standins"):
            if (path / leaked).exists() or any(any(package.rglob(leaked)) for package in ours):
                problems.append(f"{name} ({built.architecture}) contains a {leaked}/ folder")
    return problems


def size_table(*builds: Build) -> str:
    lines = ["function            " + "".join(f"{b.architecture:>12}" for b in builds) + "      budget"]
    for name in builds[0].functions:
        sizes = "".join(f"{tree_size(b.functions[name]) / MB:>9.1f} MB" for b in builds)
        lines.append(f"{name:<20}{sizes}   {BUDGETS_MB.get(name, DEFAULT_BUDGET_MB):>6} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy.artifacts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=["arm64", "x86_64"], help="default: the template's")
    parser.add_argument("--print-python", action="store_true", help="print the runtime's interpreter and exit")
    parser.add_argument("--print-boto3-pin", action="store_true", help="print the project's boto3 pin and exit")
    parser.add_argument("--compile", metavar="BUILD_DIR", type=Path,
                        help="compile a `sam build` output's modules to bytecode for the runtime, and exit")
    args = parser.parse_args(argv)
    try:
        if args.compile:
            compile_bytecode(args.compile)
            functions = [p for p in sorted(args.compile.iterdir()) if p.is_dir()]
            stale = {p.name: len(modules_without_bytecode(p)) for p in functions}
            for name, count in stale.items():
                print(f"{name}: compiled for {template_runtime()}" + (f"; {count} modules without bytecode" if count else ""))
            return 1 if any(stale.values()) else 0
        if args.print_python:
            print(find_python())
            return 0
        if args.print_boto3_pin:
            print(boto3_pin())
            return 0
        built = build(args.arch or template_architecture(), log=True)
    except ToolchainMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    print(size_table(built))
    problems = check(built)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
