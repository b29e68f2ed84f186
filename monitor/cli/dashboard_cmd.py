"""``monitor dashboard``: serve the Streamlit dashboard over the results database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from monitor.cli.db_cmd import database_url_option
from monitor.storage.database_url import DATABASE_URL_ENV, mask_url


def dashboard_script() -> Path:
    """``dashboard/app.py`` of the installed ``dashboard`` package."""
    import dashboard

    return Path(dashboard.__file__).resolve().parent / "app.py"


def streamlit_command(port: int, address: str) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, no file watcher.

    >>> streamlit_command(8600, "127.0.0.1")[1:4]
    ['-m', 'streamlit', 'run']
    """
    return [sys.executable, "-m", "streamlit", "run", str(dashboard_script()),
            "--server.port", str(port), "--server.address", address,
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal"]


@click.command("dashboard")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port to serve on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@database_url_option
def dashboard_command(port: int, address: str, database_url: str) -> None:
    """Serve the dashboard: metrics, stages, drift, tails, alerts and dead letters.

    It reads the results database (read-only) given by --database-url or
    MONITOR_DATABASE_URL, and runs until interrupted. Alert messages link to it through
    MONITOR_DASHBOARD_URL (e.g. http://HOST:8501).
    """
    command = streamlit_command(port, address)
    env = {**os.environ, DATABASE_URL_ENV: database_url}
    click.echo(f"dashboard: http://{address}:{port}  (database {mask_url(database_url)})",
               err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)  # streamlit becomes this process: signals reach it
