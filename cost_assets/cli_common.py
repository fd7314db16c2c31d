"""What every ``cost-assets`` sub-command shares: the settings, or exit 2 with the problems.

A bad setting is the user's to fix, not a crash: the message names each variable (``ConfigurationError``)
and the command exits with status 2 (typer's usage-error status) before reading or writing anything.
"""

import os
import sys
from typing import NoReturn

import typer

from cost_assets.config import ConfigurationError, Settings


def typer_app(help: str) -> typer.Typer:
    """A ``cost-assets`` command group: help without rich markup, which would eat every ``[default: …]`` in the
    option texts (square brackets are rich's markup) and keep a docstring's line breaks mid-sentence; click's
    plain help shows the texts as written and re-wraps each paragraph to the terminal."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, rich_markup_mode=None)


def settings_or_exit() -> Settings:
    """The settings from the environment; on a bad setting, its message on stderr and exit status 2."""
    try:
        return Settings.from_environ(os.environ)
    except ConfigurationError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


def leave(code: int) -> NoReturn:
    """Exit now, after flushing: duckdb 2.0's bindings print ~40 "nanobind: leaked ..." lines at interpreter
    shutdown, which would bury a command's output and messages. Everything is written and closed by then.
    A command that leaves this way is tested as a subprocess (it would end an in-process test runner too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
