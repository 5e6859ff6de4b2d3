"""A job's fields from the command line: a YAML spec file, ``key=value`` words and flags.

They become the `/train` grammar's fields, which :mod:`backend.domain.spec` reads exactly as it
reads the bot's (the submit/sweep use case, :mod:`backend.services.submit`, does the rest).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from backend.domain.spec import JOB_KEYS, SUBMIT_USAGE, SWEEP_USAGE, BadCommand, parse_fields
from backend.entrypoints.cli.common import USAGE, CliError


def spec_fields(data: Any, *, sweep: bool = False) -> dict[str, str]:
    """A YAML spec (a mapping) as the grammar's ``key=value`` fields; BadCommand if malformed."""
    usage = SWEEP_USAGE if sweep else SUBMIT_USAGE
    if not isinstance(data, dict):
        raise BadCommand(["the spec must be a YAML mapping with keys like name, image, instance, output, role"], usage)
    fields: dict[str, str] = {}
    problems: list[str] = []

    def scalar(key: str, value: Any) -> str | None:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        if isinstance(value, list) and (key == "instance" or (sweep and key.startswith("hp."))):
            # A sweep's hp list, or an instance-type fallback list (first choice first).
            items = [scalar(key, v) for v in value]
            return None if any(i is None for i in items) else ",".join(i for i in items if i is not None)
        if isinstance(value, list) and key.startswith("hp."):
            problems.append(f"{key}: a list of values is for `trainbot sweep`; submit takes one value")
        else:
            problems.append(f"{key}: {type(value).__name__} is not a value here (write a string or a number)")
        return None

    for raw_key, value in data.items():
        key = str(raw_key)
        if key in ("hp", "hyperparameters", "tags", "tag") or (key == "input" and isinstance(value, dict)):
            prefix = {"hp": "hp.", "hyperparameters": "hp.", "tags": "tag.", "tag": "tag.", "input": "input."}[key]
            if not isinstance(value, dict):
                problems.append(f"{key}: expected a mapping like {{name: value}}")
                continue
            for sub, item in value.items():
                converted = scalar(f"{prefix}{sub}", item)
                if converted is not None:
                    fields[f"{prefix}{sub}"] = converted
        elif key in JOB_KEYS:
            converted = scalar(key, value)
            if converted is not None:
                fields[key] = converted
        else:
            problems.append(f"{key!r} is not a spec key; keys are {', '.join(JOB_KEYS)}, hp, tags")
    if problems:
        raise BadCommand(problems, usage)
    return fields


def load_spec(path: str, *, sweep: bool = False) -> dict[str, str]:
    """The spec file at ``path`` ('-': stdin) as fields; CliError if unreadable."""
    import yaml

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read the spec {path}: {exc.strerror or exc}", USAGE) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadCommand([f"{path} is not valid YAML: {exc}".splitlines()[0]]) from exc
    return spec_fields(data if data is not None else {}, sweep=sweep)


def request_fields(args: argparse.Namespace, *, sweep: bool) -> dict[str, str]:
    """The spec, then the key=value words, then the flags: later ones win."""
    usage = SWEEP_USAGE if sweep else SUBMIT_USAGE
    fields: dict[str, str] = load_spec(args.spec, sweep=sweep) if args.spec else {}
    fields.update(parse_fields(list(args.fields or []), usage))
    flags = {
        "name": args.name, "image": args.image, "instance": args.instance, "count": args.count,
        "input": args.input, "output": args.output, "role": args.role, "max_runtime": args.max_runtime,
        "max_wait": args.max_wait, "spot": args.spot, "priority": args.priority, "retries": args.retries,
        "preset": args.preset, "volume": args.volume, "checkpoint": args.checkpoint,
    }
    fields.update({k: str(v) for k, v in flags.items() if v is not None})
    for option, prefix in ((args.hp or [], "hp."), (args.tag or [], "tag.")):
        words = []
        for item in option:
            key, eq, value = item.partition("=")
            words.append(f"{prefix}{key}{eq}{value}")
        fields.update(parse_fields(words, usage))
    return fields
