"""What every `trainbot` subcommand shares: exit codes, the "where and who" options, the wiring
and who the caller is. Imported by the CLI's command modules; imports none of them."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.bootstrap import Container
    from backend.services.jobs import Actor

OK, USAGE, NOT_FOUND, REFUSED, UNAVAILABLE = 0, 2, 3, 4, 5
CLI_TEAM = "cli"


class CliError(Exception):
    """An error the CLI reports with a message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --- the options every subcommand takes --------------------------------------------------------


def add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Where and who. Given before the subcommand or after it; after it, an option not given
    must not overwrite one given before (hence SUPPRESS defaults on the subcommands)."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("where and who")
    group.add_argument("--table", default=default, help="the jobs table (default: $JOBS_TABLE_NAME)")
    group.add_argument("--topic", default=default, help="the notification topic ARN (default: $NOTIFY_TOPIC_ARN)")
    group.add_argument("--region", default=default, help="AWS region (default: $AWS_REGION or us-east-1)")
    group.add_argument("--local", action="store_true", default=argparse.SUPPRESS if suppress else False, help="use the running `trainbot local`")
    group.add_argument("--local-file", default=default, metavar="FILE", help="its connection file (default: where `trainbot local` writes it)")
    group.add_argument("--user", default=default, help="who you are (default: $TRAINBOT_USER or your OS user); team is 'cli'")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False, help="machine-readable output")


def common_parent() -> argparse.ArgumentParser:
    """A parent parser carrying :func:`add_common`'s options, for a subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    add_common(common, suppress=True)
    return common


# --- wiring ------------------------------------------------------------------------------------


CONNECTION_FILE_ENV = "TRAINBOT_LOCAL_FILE"


def connection_file() -> Path:
    """Where a running `trainbot local` tells the CLI its endpoints, table and topic (local mode
    writes it; the CLI's ``--local`` reads it)."""
    if os.environ.get(CONNECTION_FILE_ENV):
        return Path(os.environ[CONNECTION_FILE_ENV])
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"trainbot-local-{os.getuid()}.json"


def apply_local_connection(path: str | None) -> dict[str, str]:
    """Point this process at a running `trainbot local` (its connection file)."""
    file = Path(path) if path else connection_file()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"no running `trainbot local` found ({file}); start it first", UNAVAILABLE) from exc
    values = {k: str(v) for k, v in data.items() if isinstance(v, str)}
    os.environ.update({k: v for k, v in values.items() if k.isupper()})
    return values


def build_container(args: argparse.Namespace, *, notify: bool = True) -> Container:
    """Trainbot wired from the environment with ``--table``/``--topic``/``--region`` on top.
    ``notify=False``: no notifiers (commands that only read history)."""
    from backend.adapters.aws import aws_client
    from backend.bootstrap import build
    from backend.config import Settings
    from backend.errors import ConfigError

    environ = dict(os.environ)
    environ.setdefault("AWS_REGION", environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    # Flags win over the environment (set under the variables' own names, which Settings reads).
    for flag, variable in (("table", "JOBS_TABLE_NAME"), ("topic", "NOTIFY_TOPIC_ARN"), ("region", "AWS_REGION")):
        if getattr(args, flag, None):
            environ[variable] = getattr(args, flag)
    if not environ.get("JOBS_TABLE_NAME"):
        raise ConfigError("no jobs table: pass --table NAME, set JOBS_TABLE_NAME, or use --local")
    settings = Settings.from_env(environ)
    # Fewer retries than a Lambda: a person is waiting, and "unreachable" should say so soon.
    dynamodb = aws_client("dynamodb", region=settings.aws_region, max_attempts=2)
    if notify:
        return build(settings, dynamodb=dynamodb)
    return build(settings, dynamodb=dynamodb, notifiers=lambda _store: [])


# A Slack member id (U0123ABCD) or a plain login name: the owner of a CLI-made job is shown in
# Slack answers, so it may not carry markup (``<!here>``, a link, ``&``, spaces).
_CLI_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def user_of(args: argparse.Namespace) -> str:
    """Who runs the command: ``--user``, $TRAINBOT_USER or the OS user (CliError if it is not
    a Slack member id or a plain login name)."""
    user = getattr(args, "user", None) or os.environ.get("TRAINBOT_USER") or _os_user()
    if not _CLI_USER.match(user):
        raise CliError(f"--user {user[:40]!r} is not a Slack member id (U0123ABCD) or a login name", USAGE)
    return user


def actor(args: argparse.Namespace) -> Actor:
    from backend.services.jobs import Actor

    return Actor(team_id=CLI_TEAM, user_id=user_of(args))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli-user"
