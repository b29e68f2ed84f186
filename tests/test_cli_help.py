"""`monitor --help` lists summaries kept beside the lazy command table: they must match."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from monitor.cli.main import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_summary_is_the_commands_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert COMMANDS[name][1] == command.get_short_help_str(limit=200)


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name, (_, summary) in COMMANDS.items():
        assert name in result.output
        assert summary.split()[0] in result.output
