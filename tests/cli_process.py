"""A ``monitor`` command in a process of its own, for tests of long-running commands: its
output collected line by line as it comes, waited on with a timeout, stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


class CliProcess:
    """``monitor ARGS`` started at once; ``stop()`` sends SIGTERM and returns its exit code."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        command = [sys.executable, "-c", "from monitor.cli.main import cli; cli()", *args]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=_collect, args=(pipe, lines), daemon=True)
                         for pipe, lines in ((self.process.stdout, self.stdout),
                                             (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the command exited ({self.process.returncode}) while "
                                     f"waiting for {what}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n"
                                     f"{self.output}")
            time.sleep(0.05)

    def wait_for_line(self, text: str, timeout: float) -> None:
        self.wait_for(lambda: text in self.output, timeout, repr(text))

    def stop(self, timeout: float = 20) -> int:
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self._readers:
                reader.join(timeout=5)


def _collect(pipe: IO[str], lines: list[str]) -> None:
    lines.extend(iter(pipe.readline, ""))
