"""Loading the user's Monitor from ``module:attribute``: one loader, and the command line's
messages (and exit codes: 2 for a usage error) when the target names none."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from monitor.app_loading import AppLoadError, MalformedAppTarget, load_app
from tests.cli_app import mon


def test_the_target_is_imported_and_must_be_a_monitor() -> None:
    assert load_app("tests.cli_app:mon") is mon
    with pytest.raises(MalformedAppTarget, match="must look like module:attribute"):
        load_app("tests.cli_app")
    with pytest.raises(AppLoadError, match=re.escape("cannot import 'tests.no_such_app'")):
        load_app("tests.no_such_app:mon")
    with pytest.raises(AppLoadError, match=re.escape("tests.cli_app:missing is NoneType, "
                                                     "not a monitor.Monitor")):
        load_app("tests.cli_app:missing")


@pytest.mark.parametrize(("target", "code", "message"), [
    ("tests.cli_app", 2, "--app 'tests.cli_app' must look like module:attribute"),
    ("tests.no_such_app:mon", 1, "cannot import 'tests.no_such_app' for --app: No module "
                                 "named 'tests.no_such_app'"),
    ("tests.cli_app:APP", 1, "tests.cli_app:APP is NoneType, not a monitor.Monitor; point "
                             "--app at the Monitor your module builds"),
])
def test_the_command_line_says_what_is_wrong_with_the_app(target: str, code: int,
                                                          message: str) -> None:
    from monitor.cli.main import cli

    result = CliRunner().invoke(cli, ["--app", target, "metrics", "list"])
    assert result.exit_code == code
    assert message in " ".join(result.output.split())
