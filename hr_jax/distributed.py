"""Multi-process runs on JAX's multi-controller runtime (`jax.distributed`), with bounded waits.

Launch (one process per host, or several on one machine):

    JAX_COORDINATOR_ADDRESS=HOST:PORT JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i  hr-jax eval ...
    HR_JAX_DISTRIBUTED=1 hr-jax eval ...     # SLURM, TPU pods: JAX detects the cluster itself

`jax.distributed.initialize()` reads only the address from the environment; `initialize_from_env` reads
all three and passes them. Each process then works on its own local devices (no cross-process
collective): an evaluation gives each process every N-th sample and lets it write its own rows.

What JAX does by default when something goes wrong, measured on a 2-core CPU machine: a peer that
never starts aborts the others after 300 s (SIGABRT, no Python error); a killed peer makes the
survivors abort after the 100 s heartbeat timeout, or hang 100 s in the shutdown barrier; a coordinator
port already in use crashes process 0. Here instead:

- the timeouts are set (`Timeouts`, from `HR_JAX_INIT_TIMEOUT`, `HR_JAX_HEARTBEAT_TIMEOUT`,
  `HR_JAX_SHUTDOWN_TIMEOUT`, in seconds);
- process 0 checks that the coordinator port is free before binding it, and says so if not;
- a watchdog ends a process whose peers never all connect, naming the address and count it waited for;
- JAX's recoverable mode (`jax_enable_recoverability`) is on, so a dead peer does not take the
  survivors down with it. Each process bumps a beat in the coordination service's key-value store
  every second; `finish` publishes this process's end there and, on process 0 (which hosts the service
  and must outlive the others), waits until every peer has finished or its beat has stood still for
  the heartbeat timeout; it returns the lost ones by index.
- The one fault JAX still handles alone: if process 0 itself dies, the service dies with it and JAX
  terminates the others at once. Every row they wrote is on disk (rows are flushed per batch), and a
  rerun of the same command resumes what is missing.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from typing import Any

ADDRESS_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"
AUTO_ENV = "HR_JAX_DISTRIBUTED"
DONE_PREFIX = "hr_jax/done/"
BEAT_PREFIX = "hr_jax/beat/"
WATCHDOG_EXIT = 3  # exit status when peers never all connected


class DistributedError(RuntimeError):
    """A multi-process launch that cannot start, named by the variable or address at fault."""


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds: `init` for every process to connect, `heartbeat` before a silent peer counts as dead,
    `shutdown` for the final barrier."""

    init: int = 120
    heartbeat: int = 30
    shutdown: int = 30

    @classmethod
    def from_env(cls) -> Timeouts:
        values = {}
        for field, env in (("init", "HR_JAX_INIT_TIMEOUT"), ("heartbeat", "HR_JAX_HEARTBEAT_TIMEOUT"),
                           ("shutdown", "HR_JAX_SHUTDOWN_TIMEOUT")):  # fmt: skip
            raw = os.environ.get(env)
            if raw:
                values[field] = _int_env(env, raw, minimum=1)
        return cls(**values)


def _int_env(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise DistributedError(f"{name}={raw!r}: expected an integer >= {minimum}")
    return value


def launch_from_env() -> tuple[str, int, int] | None:
    """(address, number of processes, process id) from the `JAX_*` variables, None when the address is
    not set; a clear error when it is set and the others are missing or wrong."""
    address = os.environ.get(ADDRESS_ENV)
    if not address:
        return None
    missing = [v for v in (NUM_PROCESSES_ENV, PROCESS_ID_ENV) if not os.environ.get(v)]
    if missing:
        raise DistributedError(f"{ADDRESS_ENV} is set but {' and '.join(missing)} not: set all three")
    n = _int_env(NUM_PROCESSES_ENV, os.environ[NUM_PROCESSES_ENV], minimum=1)
    pid = _int_env(PROCESS_ID_ENV, os.environ[PROCESS_ID_ENV], minimum=0)
    if pid >= n:
        raise DistributedError(f"{PROCESS_ID_ENV}={pid} must be below {NUM_PROCESSES_ENV}={n}")
    if ":" not in address:
        raise DistributedError(f"{ADDRESS_ENV}={address!r}: expected HOST:PORT")
    return address, n, pid


def check_port_free(address: str) -> None:
    """Raises `DistributedError` when the coordinator's port is already taken on this machine (JAX's
    service binds `[::]:PORT`; a taken port crashes it)."""
    port = int(address.rsplit(":", 1)[1])
    family, host = (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "")
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # no IPv6 in this kernel
        s, host = socket.socket(socket.AF_INET, socket.SOCK_STREAM), ""
    with s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DistributedError(
                f"the coordinator port {port} ({ADDRESS_ENV}={address}) is already in use on this machine "
                f"({exc.strerror}); pick a free port"
            ) from None


def _watchdog(seconds: float, message: str) -> threading.Event:
    """Ends the process with `message` after `seconds` unless the returned event is set first (JAX's
    own timeout aborts with no word of what it waited for)."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            print(f"hr_jax: {message}", file=sys.stderr, flush=True)
            os._exit(WATCHDOG_EXIT)

    threading.Thread(target=watch, name="hr_jax-init-watchdog", daemon=True).start()
    return done


def initialize_from_env(timeouts: Timeouts | None = None) -> bool:
    """`jax.distributed.initialize` for a multi-process launch (see the module docstring); True if it
    ran. Must come before anything else uses JAX's backends."""
    launch = launch_from_env()
    auto = os.environ.get(AUTO_ENV) == "1"
    if launch is None and not auto:
        return False
    import jax

    t = timeouts or Timeouts.from_env()
    jax.config.update("jax_enable_recoverability", True)  # a dead peer must not abort the survivors
    kwargs: dict[str, Any] = dict(
        initialization_timeout=t.init + 10,  # the watchdog speaks first
        heartbeat_timeout_seconds=t.heartbeat,
        shutdown_timeout_seconds=t.shutdown,
    )
    if launch is None:
        where = "the cluster's processes (auto-detected)"
    else:
        address, n, pid = launch
        kwargs.update(coordinator_address=address, num_processes=n, process_id=pid)
        where = f"{n} processes at {address} (this is process {pid})"
        if pid == 0:
            check_port_free(address)
    message = f"gave up after {t.init} s waiting for {where} to connect; did every peer start?"
    done = _watchdog(t.init, message)
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(f"jax.distributed.initialize failed for {where}: {exc}") from exc
    finally:
        done.set()
    start_beats()
    return True


def _client() -> Any:
    # JAX exposes its coordination service's key-value store and liveness only through this object.
    from jax._src import distributed

    return distributed.global_state.client


_BEATS_STOP = threading.Event()
_BEATS: list[threading.Thread] = []


def _beat(client: Any, pid: int, every_s: float) -> None:
    """Bumps this process's beat in the key-value store until `finish` stops it or the process ends (a
    daemon thread; it must be stopped before the client is shut down, never use it afterwards)."""
    count = 0
    while not _BEATS_STOP.is_set():
        count += 1
        try:
            client.key_value_set(f"{BEAT_PREFIX}{pid}", str(count), allow_overwrite=True)
        except Exception:  # the service is gone: nothing left to tell
            return
        _BEATS_STOP.wait(every_s)


def _stop_beats() -> None:
    _BEATS_STOP.set()
    for thread in _BEATS:
        thread.join(timeout=10)


def start_beats(every_s: float = 1.0) -> None:
    """Publishes this process's liveness for `finish` (JAX's own heartbeats are not readable here)."""
    import jax

    if jax.process_count() > 1:
        client = _client()
        _BEATS_STOP.clear()
        thread = threading.Thread(target=_beat, args=(client, jax.process_index(), every_s), daemon=True)
        thread.start()
        _BEATS.append(thread)


def finish(timeouts: Timeouts | None = None, poll_s: float = 0.5) -> list[int]:
    """Marks this process's work done. On process 0 (it hosts the coordination service, so it must
    outlive the others) waits until every other process has finished or is dead: its beat
    (`start_beats`) unchanged for `Timeouts.heartbeat` s. Returns the dead processes' indices ([] on any
    other process, or with one process)."""
    import jax

    n, pid = jax.process_count(), jax.process_index()
    if n == 1:
        return []
    client = _client()
    client.key_value_set(f"{DONE_PREFIX}{pid}", "1", allow_overwrite=True)
    if pid != 0:
        _stop_beats()  # the beat thread must not touch the client once it is shut down
        # Leave the service now, while process 0 still hosts it (it waits for this below): in
        # recoverable mode JAX's exit-time shutdown is no barrier, and a peer whose disconnect reaches
        # a service already gone is terminated by JAX (SIGABRT) after finishing its work.
        jax.distributed.shutdown()
        return []
    t = timeouts or Timeouts.from_env()
    last: dict[int, tuple[str, float]] = {}
    while True:
        done = {int(k.rsplit("/", 1)[1]) for k, _ in client.key_value_dir_get(DONE_PREFIX)}
        beats = {int(k.rsplit("/", 1)[1]): v for k, v in client.key_value_dir_get(BEAT_PREFIX)}
        now = time.monotonic()
        pending = [p for p in range(n) if p not in done]
        for p in pending:  # a peer that never beat at all starts its silence now
            if p not in last or last[p][0] != beats.get(p):
                last[p] = (beats.get(p), now)
        if all(now - last[p][1] > t.heartbeat for p in pending):
            break
        time.sleep(poll_s)
    finished = [p for p in range(1, n) if p not in pending]
    deadline = time.monotonic() + t.shutdown
    while time.monotonic() < deadline and set(client.get_live_nodes(list(range(n)))) & set(finished):
        time.sleep(poll_s)  # the finished peers are disconnecting
    return pending
