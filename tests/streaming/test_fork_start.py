"""A worker forks its processor's process when that is safe, sharing the imported
libraries' memory with it, and spawns it otherwise (streaming.fork_start).

Each case runs in a fresh interpreter: the test process itself has threads and sockets
(a broker's, a database's) that would make every fork unsafe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]

# Prints a JSON object: how the processor was started, what its steps answered, its
# name, and its memory shared with the worker (Shared_Dirty: anonymous pages written
# before the fork and by neither since; a spawned child has next to none).
START_PROCESSOR = """
import json, sys, threading
import streaming.worker  # the worker's imports, as the command has them when it forks
from streaming.processor import StreamSettings
from streaming.processor_process import ProcessorProcess, ProcessorSpec
from tests.streaming.stream_app import mon

if sys.argv[2] == "with-a-thread":
    threading.Thread(target=threading.Event().wait, daemon=True, name="busy").start()
spec = ProcessorSpec(sys.argv[1], "tests.streaming.stream_app:mon", mon.streams["home"],
                     2, ("latency",), StreamSettings(), None, 30)
process = ProcessorProcess(spec)
owned = process.owned()
pid = process._process.pid
with open(f"/proc/{pid}/comm") as comm:
    name = comm.read().strip()
with open(f"/proc/{pid}/smaps_rollup") as rollup:
    shared = sum(int(line.split()[1]) for line in rollup
                 if line.startswith("Shared_Dirty:")) / 1024
process.close()
print(json.dumps({"method": process.start_method, "owned": sorted(owned), "name": name,
                  "shared_dirty_mb": shared, "exit": process._process.exitcode}))
"""


def run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # the child's JSON
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is used on Linux only")
def test_a_processor_is_forked_and_shares_the_imported_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    upgrade(url)
    found = run(START_PROCESSOR, url, "alone")
    assert found["method"] == "fork"
    assert found["owned"] == []  # its steps answer: it read the catalog and serves
    assert found["name"] == "monitor-proc"
    assert found["exit"] == 0  # it ended when asked
    assert isinstance(found["shared_dirty_mb"], float) and found["shared_dirty_mb"] > 30


def test_a_thread_running_makes_it_spawned(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    upgrade(url)
    found = run(START_PROCESSOR, url, "with-a-thread")
    assert found["method"] == "spawn"
    assert found["owned"] == []
    assert found["name"] == "monitor-proc"
    assert found["exit"] == 0
    assert isinstance(found["shared_dirty_mb"], float) and found["shared_dirty_mb"] < 30


REFUSALS = """
import asyncio, json, socket, threading
import streaming.worker
from streaming.fork_start import fork_refusal

found = {"clean": fork_refusal()}
pair = socket.socketpair()
found["socket"] = fork_refusal()
found["own pipes"] = fork_refusal(own_pipes=[s.fileno() for s in pair])
for s in pair:
    s.close()
stop = threading.Event()
thread = threading.Thread(target=stop.wait, name="busy")
thread.start()
found["thread"] = fork_refusal()
stop.set()
thread.join()

async def in_a_loop():
    return fork_refusal()

found["loop"] = asyncio.run(in_a_loop())
print(json.dumps(found))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is used on Linux only")
def test_fork_is_refused_with_a_thread_a_socket_or_a_loop() -> None:
    found = run(REFUSALS)
    assert found["clean"] is None
    assert found["own pipes"] is None
    assert "socket(s) are open" in str(found["socket"])
    assert "Python thread(s)" in str(found["thread"]) and "busy" in str(found["thread"])
    assert "event loop" in str(found["loop"])


NATIVE_THREADS = """
import json, os
import numpy, pandas, pyarrow, scipy.stats  # start OpenBLAS's and jemalloc's threads
numpy.ones((300, 300)) @ numpy.ones((300, 300))
before = len(os.listdir("/proc/self/task"))
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.write(write, str(len(os.listdir("/proc/self/task"))).encode())
    total = float((numpy.ones((300, 300)) @ numpy.ones((300, 300))).sum())
    os.write(write, b" %d" % (total == 300.0 ** 3))
    os._exit(0)
os.waitpid(child, 0)
os.close(write)
threads, product = os.read(read, 100).split()
print(json.dumps({"before": before, "child": int(threads), "product_ok": product == b"1"}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is used on Linux only")
def test_the_libraries_threads_do_not_follow_a_fork() -> None:
    """Why native threads are allowed (see streaming.fork_start): the child of a process
    with OpenBLAS's and jemalloc's threads has one thread, and its BLAS works."""
    found = run(NATIVE_THREADS)
    assert found["before"] > 1
    assert found["child"] == 1
    assert found["product_ok"] is True
