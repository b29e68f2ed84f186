"""A Spark standalone cluster on this machine: a master and workers started from
pyspark's own ``bin/spark-class`` (the pyspark package ships no ``sbin/start-*.sh``), on
loopback, stopped (SIGTERM, then SIGKILL) with every executor they started; and finding
(to kill) the executor a Python worker serves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

EXECUTOR_CLASS = "CoarseGrainedExecutorBackend"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class Cluster:
    master_url: str
    ui_port: int
    processes: list[subprocess.Popen[bytes]]
    logs: Path

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/",
                                        timeout=2) as reply:
                state = json.load(reply)
        except OSError:
            return 0
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def executor_pids(self) -> list[int]:
        """The executor JVMs the workers started (children of the workers)."""
        workers = {p.pid for p in self.processes[1:]}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                parent = parent_of(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
            if EXECUTOR_CLASS in command and _descends(parent, workers):
                found.append(int(entry.name))
        return sorted(found)

    def log_text(self) -> str:
        return "\n".join(f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.logs.glob("*.log")))


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def executor_of(pid: int) -> int:
    """The executor JVM a Python worker descends from (executor -> pyspark's daemon ->
    the worker it forked)."""
    current = pid
    for _ in range(5):
        if EXECUTOR_CLASS.encode() in Path(f"/proc/{current}/cmdline").read_bytes():
            return current
        current = parent_of(current)
    raise AssertionError(f"Python worker {pid} has no executor JVM among its ancestors")


def executor_id(pid: int) -> str:
    """Spark's id of an executor JVM (the driver's log names executors by id)."""
    words = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return words[words.index("--executor-id") + 1]


def kill_and_wait(pid: int, timeout: float = 30) -> None:
    """SIGKILL ``pid`` and wait until it is dead (gone, or a zombie not yet reaped)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state == "Z":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still alive {timeout:g} s after SIGKILL")
        time.sleep(0.05)


def _descends(pid: int, ancestors: set[int]) -> bool:
    """Whether ``pid`` is one of ``ancestors`` or a descendant (the worker may start the
    executor through a shell)."""
    for _ in range(5):
        if pid in ancestors:
            return True
        try:
            pid = parent_of(pid)
        except (OSError, ValueError, IndexError):
            return False
        if pid <= 1:
            return False
    return False


@contextmanager
def standalone_cluster(workers: int, folder: Path, env: Mapping[str, str],
                       timeout: float = 120) -> Iterator[Cluster]:
    """A master and ``workers`` workers of one core and 1 GiB each, their processes'
    output in ``folder``; ``env`` goes to every process (and so to the executors)."""
    home = spark_home()
    spark_class = str(home / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    base = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable, **env}
    folder.mkdir(parents=True, exist_ok=True)
    commands = [[spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                 "--port", str(port), "--webui-port", str(ui_port)]]
    for number in range(workers):
        work = folder / f"worker-{number}"
        work.mkdir(exist_ok=True)
        commands.append([spark_class, "org.apache.spark.deploy.worker.Worker",
                         "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                         "--webui-port", str(free_port()), "--work-dir", str(work),
                         f"spark://127.0.0.1:{port}"])
    processes: list[subprocess.Popen[bytes]] = []
    cluster = Cluster(f"spark://127.0.0.1:{port}", ui_port, processes, folder)
    try:
        for number, command in enumerate(commands):
            name = "master" if number == 0 else f"worker-{number}"
            with open(folder / f"{name}.log", "wb") as log:
                processes.append(subprocess.Popen(command, env=base, stdout=log,
                                                  stderr=subprocess.STDOUT,
                                                  start_new_session=True))
        deadline = time.monotonic() + timeout
        while cluster.alive_workers() < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise AssertionError(f"the Spark cluster did not start:\n{cluster.log_text()}")
            time.sleep(0.5)
        yield cluster
    finally:
        for process in reversed(processes):  # each in a session of its own: its group
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)
