"""The launch variables and the end-of-run wait of `hr_jax.distributed`, without starting JAX's runtime
(tests/test_multiprocess_eval.py runs real processes)."""

from __future__ import annotations

import pytest

from hr_jax import distributed
from hr_jax.distributed import DistributedError, Timeouts, finish, launch_from_env


class FakeClient:
    """The coordination service's key-value store, as `finish` uses it."""

    def __init__(self, store: dict[str, str], live_polls: int = 0):
        self.store = store
        self.live_polls = live_polls  # how many more polls the finished peer stays connected
        self.polls = 0

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        self.store[key] = value

    def key_value_dir_get(self, prefix: str) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.store.items() if k.startswith(prefix)]

    def get_live_nodes(self, process_ids: list[int]) -> dict[int, int]:
        self.polls += 1
        return {0: 100, 1: 101} if self.polls <= self.live_polls else {0: 100}


@pytest.fixture
def two_processes(monkeypatch):
    import jax

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 0)


def test_all_three_variables_are_read(monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "host0:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    assert launch_from_env() == ("host0:1234", 2, 1)


def test_a_process_id_beyond_the_count_is_named(monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "host0:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "2")
    with pytest.raises(DistributedError, match="JAX_PROCESS_ID=2 must be below JAX_NUM_PROCESSES=2"):
        launch_from_env()


def test_process_zero_names_a_peer_that_never_beat(two_processes, monkeypatch):
    client = FakeClient({})
    monkeypatch.setattr(distributed, "_client", lambda: client)
    assert finish(Timeouts(heartbeat=0), poll_s=0.01) == [1]


def test_process_zero_returns_no_loss_when_every_peer_finished(two_processes, monkeypatch):
    client = FakeClient({"hr_jax/done/1": "1", "hr_jax/beat/1": "7"})
    monkeypatch.setattr(distributed, "_client", lambda: client)
    assert finish(Timeouts(heartbeat=0), poll_s=0.01) == []
    assert client.store["hr_jax/done/0"] == "1"


def test_process_zero_waits_until_finished_peers_have_disconnected(two_processes, monkeypatch):
    client = FakeClient({"hr_jax/done/1": "1", "hr_jax/beat/1": "7"}, live_polls=3)
    monkeypatch.setattr(distributed, "_client", lambda: client)
    assert finish(Timeouts(heartbeat=0, shutdown=30), poll_s=0.01) == []
    assert client.polls == 4  # it returned on the first poll that no longer saw peer 1
