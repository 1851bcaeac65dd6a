"""Continuous batching: one thread runs the engine for every request the server admits.

Each turn of its loop:
1. drops waiting and running requests that were cancelled (client gone) or ran out of time;
2. admits up to `max_prefill_rows` waiting requests into free decode slots (a few per turn, so the
   running slots keep decoding between prefills): those sharing a bucket and a pruning spec are
   prefilled together (each pruned as it asked), their first tokens chosen and their caches written
   into the free slots (`hr_jax.engine.slots`);
3. decodes every busy slot `decode_steps` tokens together (the lowest power of two of slots that holds
   every running request: requests take the lowest free slots), hands each request its new text and frees the
   slot at a stop token, at `max_tokens`, at a stop string, or when the request is gone.

Compiled programs stay bounded: one prefill per bucket (the engine's), one insert per (bucket, rows),
one decode program per cache capacity, and capacities grow by whole `CAPACITY_MULTIPLE`s of the
geometric buckets. A request whose prefill fails is retried alone, then fails alone with a 500.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import warnings

import jax
import numpy as np

from hr_jax.engine import PruningSpec, buckets, run_prefill
from hr_jax.engine.core import decode_weights_core
from hr_jax.engine.planning import resolve_router
from hr_jax.engine.slots import SlotState, decode_slots, empty_slots, first_tokens, grow_slots, insert_rows
from hr_jax.model import Model
from hr_jax.serving.errors import RequestError
from hr_jax.serving.jobs import Admitted, Delta, Failed, Finished, Job, held_back, stack_rows
from hr_jax.serving.metrics import ServerMetrics
from hr_jax.sharding import DATA, CacheSharding, axis_size
from models.decoder import resolve_decode_layout

CAPACITY_MULTIPLE = 256  # decode-slot cache capacities are bucketed in these many slots
IDLE_WAIT_S = 0.05  # how long the idle loop sleeps between looks at the queue


class QueueFull(RequestError):
    def __init__(self, limit: int):
        super().__init__(
            f"the server's queue is full ({limit} waiting requests); retry later",
            status=429,
            code="queue_full",
        )


class Scheduler:
    """The engine thread (see the module docstring). `submit` from any thread; `start`, `drain`, `stop`
    from the server's."""

    def __init__(
        self,
        model: Model,
        metrics: ServerMetrics,
        max_batch: int = 8,
        max_queue: int = 64,
        decode_steps: int = 4,
        min_capacity: int = 1024,
        max_prefill_rows: int = 4,
    ):
        self.model = model
        self.metrics = metrics
        self.max_queue = max_queue
        self.decode_steps = decode_steps
        self.max_prefill_rows = max_prefill_rows
        mesh = model.mesh
        self._row_unit = axis_size(mesh, DATA) if mesh is not None else 1
        self.slots = -(-max_batch // self._row_unit) * self._row_unit  # split evenly over the data axis
        self.sharding = (
            None if mesh is None else CacheSharding.for_mesh(mesh, model.config.text.num_key_value_heads)
        )
        _, self.prune_layer = resolve_router(model, PruningSpec(0.6, "headrouter"), warn=False)
        self.prune_layer = min(self.prune_layer, model.config.text.num_hidden_layers - 1)
        self.min_capacity = buckets.round_up(min_capacity, CAPACITY_MULTIPLE)
        self._weights = decode_weights_core(
            model.params,
            model.config,
            self.prune_layer,
            self.slots,
            resolve_decode_layout(model.options.decode_layout),
        )
        self._state: SlotState = self._empty()
        self._waiting: collections.deque[Job] = collections.deque()
        self._live: dict[int, Job] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._drain_deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="hr-jax-scheduler", daemon=True)

    # ---------------------------------------------------------------- the server's side

    def start(self) -> None:
        self._thread.start()

    def warm_up(self) -> None:
        """Compiles the decode programs of the first capacity (the first requests then wait less)."""
        for rows in sorted({self._round_rows(1 << k) for k in range(self.slots.bit_length())}):
            args = (self._weights, self.decode_steps, rows, self.sharding)
            self._state, tokens = decode_slots(self.model.params, self.model.config, self._state, *args)
            jax.block_until_ready(tokens)

    def _round_rows(self, rows: int) -> int:
        """`rows` as a row count the slots split into evenly (a multiple of the data axis), at most all."""
        return min(-(-rows // self._row_unit) * self._row_unit, self.slots)

    def _rows_in_use(self) -> int:
        """The decode program's row count: the power of two covering the highest live slot (requests
        take the lowest free slots, so a lightly loaded server decodes few rows)."""
        top = max(self._live) + 1
        return self._round_rows(1 << (top - 1).bit_length())

    def submit(self, job: Job) -> None:
        """Queues `job`; raises `QueueFull` (429) at `max_queue` waiting, 503 while shutting down."""
        with self._cond:
            if self._stopping:
                raise RequestError("the server is shutting down", status=503, code="shutting_down")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(self.max_queue)
            self._waiting.append(job)
            self.metrics.set_load(len(self._waiting), len(self._live))
            self._cond.notify()

    def drain(self, seconds: float) -> None:
        """Stops admitting: waiting requests fail with 503 now; running ones may finish within `seconds`,
        then are cancelled."""
        with self._cond:
            self._stopping = True
            self._drain_deadline = time.monotonic() + seconds
            waiting, self._waiting = list(self._waiting), collections.deque()
            self._cond.notify()
        for job in waiting:
            self._fail(job, RequestError("the server is shutting down", status=503, code="shutting_down"))

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._waiting and not self._live

    def stop(self, timeout: float = 10.0) -> None:
        self.drain(0.0)
        self._thread.join(timeout)

    def load(self) -> tuple[int, int]:
        """(waiting, running) requests."""
        with self._cond:
            return len(self._waiting), len(self._live)

    # ---------------------------------------------------------------- the engine thread

    def _empty(self) -> SlotState:
        cap = (self.min_capacity, self.min_capacity)
        cfg, dtype = self.model.config, self.model.dtype
        state = empty_slots(cfg, self.slots, self.prune_layer, cap, dtype, self.sharding)
        # committed where it lies, as the programs' outputs are: else the first decode compiles twice
        return jax.device_put(state, jax.tree.map(lambda x: x.sharding, state))

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping and not self._live and not self._waiting:
                    return
                if not self._waiting and not self._live:
                    self._cond.wait(IDLE_WAIT_S)
                    continue
            self._expire()
            self._admit()
            if self._live:
                self._step()
            self.metrics.set_load(*self.load())

    def _expire(self) -> None:
        """Frees what was cancelled or ran out of time (and, past the drain deadline, everything)."""
        now = time.monotonic()
        past_drain = self._drain_deadline is not None and now >= self._drain_deadline
        with self._cond:
            gone = [j for j in self._waiting if j.cancelled.is_set() or now >= j.deadline]
            for j in gone:
                self._waiting.remove(j)
        for job in gone:
            self._end_early(job, now)
        for slot, job in list(self._live.items()):
            if job.cancelled.is_set() or now >= job.deadline or past_drain:
                del self._live[slot]
                if past_drain and not job.cancelled.is_set() and now < job.deadline:
                    self._fail(
                        job,
                        RequestError(
                            "cancelled: the server shut down before the reply was done",
                            status=503,
                            code="shutting_down",
                        ),
                    )
                else:
                    self._end_early(job, now)

    def _end_early(self, job: Job, now: float) -> None:
        if job.cancelled.is_set():
            self.metrics.finished("cancelled", None)
        else:
            limit = job.deadline - job.arrived
            self._fail(
                job,
                RequestError(f"request {job.id} timed out after {limit:.0f} s", status=504, code="timeout"),
            )

    def _fail(self, job: Job, error: RequestError) -> None:
        self.metrics.finished(f"error_{error.status}", None)
        job.emit(Failed(error))

    def _admit(self) -> None:
        free = [s for s in range(self.slots) if s not in self._live]
        with self._cond:
            count = min(len(free), len(self._waiting), self.max_prefill_rows)
            taken = [self._waiting.popleft() for _ in range(count)]
        if not taken:
            return
        if not self._live:  # idle: start again from the smallest caches
            self._state = self._empty() if self._state.capacities != (self.min_capacity,) * 2 else self._state
        groups: dict[tuple, list[Job]] = {}
        for job in taken:
            groups.setdefault(job.bucket_key(self.model), []).append(job)
        for jobs in groups.values():
            try:
                self._prefill(jobs, free)
            except Exception as exc:  # noqa: BLE001 - a failing group is retried one by one
                if len(jobs) == 1:
                    self._fail(
                        jobs[0],
                        RequestError(
                            f"request {jobs[0].id} failed in the engine: {type(exc).__name__}: {exc}",
                            status=500,
                        ),
                    )
                    continue
                for job in jobs:
                    try:
                        self._prefill([job], free)
                    except Exception as exc1:  # noqa: BLE001
                        self._fail(
                            job,
                            RequestError(
                                f"request {job.id} failed in the engine: {type(exc1).__name__}: {exc1}",
                                status=500,
                            ),
                        )

    def _prefill(self, jobs: list[Job], free: list[int]) -> None:
        """Prefills `jobs` (one bucket, one pruning spec) and writes them into slots taken from `free`.
        The rows are padded to a power of two (repeating the last request) so that a bucket compiles
        a handful of prefill programs, not one per group size."""
        model = self.model
        n = len(jobs)
        padded = jobs + [jobs[-1]] * ((1 << (n - 1).bit_length()) - n)
        batch = stack_rows([j.prefill_batch for j in padded], model.pad_token_id)
        pruning = dataclasses.replace(jobs[0].pruning, prune_layer=self.prune_layer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the uniform-router advisory is the server's to give, once
            state, p = run_prefill(model, batch, pruning)
        rows = state.logits.shape[0]  # the padded rows, and more on a mesh whose data axis needs them
        padded += [jobs[-1]] * (rows - len(padded))

        temp = np.asarray([j.sampling.temperature for j in padded], np.float32)
        top_p = np.asarray([j.sampling.top_p for j in padded], np.float32)
        seed = np.asarray([j.sampling.seed for j in padded], np.int32)
        first = first_tokens(state.logits, temp, top_p, seed)
        lo, up = state.cache.lower.capacity, state.cache.upper.capacity
        room = max(j.sampling.max_new_tokens for j in jobs) + self.decode_steps
        need = (
            buckets.round_up(lo + room, CAPACITY_MULTIPLE),
            buckets.round_up(up + room, CAPACITY_MULTIPLE),
        )
        have = self._state.capacities
        if need[0] > have[0] or need[1] > have[1]:
            grown = (max(need[0], have[0]), max(need[1], have[1]))
            self._state = grow_slots(self._state, grown, self.sharding)
        slots = [free.pop(0) for _ in jobs]
        # Padding rows write the last request's row again into its own slot: the same values twice.
        slots_padded = np.asarray(slots + [slots[-1]] * (rows - n), np.int32)
        self._state = insert_rows(self._state, state, first, slots_padded, temp, top_p, seed, self.sharding)
        sel = state.selection
        num_audio, kept = np.asarray(sel.num_audio)[:n], np.asarray(sel.kept_audio)[:n]
        alpha = np.asarray(sel.alpha)[:n] if pruning.prunes and p.plan.selection is not None else None
        first = np.asarray(first)[:n]
        for i, (job, slot) in enumerate(zip(jobs, slots, strict=True)):
            routed = alpha is not None and pruning.method.startswith("headrouter")
            if job.continued is None:  # a job prefilled again at LongRoPE's switch was admitted before
                job.emit(
                    Admitted(
                        job.prompt_tokens,
                        int(num_audio[i]),
                        int(kept[i]),
                        [round(float(a), 4) for a in alpha[i]] if routed else None,
                    )
                )
                self.metrics.admitted(job.prompt_tokens, int(num_audio[i]), int(kept[i]))
                self.metrics.first_token(time.monotonic() - job.arrived)
            self._live[slot] = job
            self._take(slot, [int(first[i])])

    def _step(self) -> None:
        try:
            rows = self._rows_in_use()
            args = (self._weights, self.decode_steps, rows, self.sharding)
            self._state, tokens = decode_slots(self.model.params, self.model.config, self._state, *args)
            tokens = np.asarray(tokens)
        except Exception as exc:  # noqa: BLE001 - the slots' state is lost: every running request fails
            for slot, job in list(self._live.items()):
                del self._live[slot]
                self._fail(
                    job,
                    RequestError(
                        f"request {job.id} failed in the engine while decoding: {type(exc).__name__}: {exc}",
                        status=500,
                    ),
                )
            self._state = self._empty()
            return
        for slot in list(self._live):
            self._take(slot, tokens[slot].tolist())

    def _take(self, slot: int, tokens: list[int]) -> None:
        """Feeds a slot's new tokens to its request; frees the slot when the reply is done, or when it
        reaches LongRoPE's switch (the job then waits, first in line, for a prefill of its prompt and
        tokens with the long factors, as `hr_jax.generate` does; the slot's tokens past it are dropped)."""
        job = self._live[slot]
        stops = set(self.model.stop_token_ids)
        ends = set() if job.ignore_eos else stops
        switch = job.rope_switch(self.model)
        reason = None
        used = 0
        for tok in tokens:
            job.tokens.append(tok)
            used += 1
            if tok in ends:
                reason = "stop"
                break
            if len(job.tokens) >= job.sampling.max_new_tokens:
                reason = "length"
                break
            if len(job.tokens) == switch:
                break
        self.metrics.generated(used)
        text = self.model.tokenizer.decode(
            [t for t in job.tokens if t not in stops], skip_special_tokens=True
        )
        hits = [i for i in (text.find(s, max(0, len(job.sent) - len(s))) for s in job.stop) if i >= 0]
        if hits:
            text, reason = text[: min(hits)], "stop"
        if reason is None:
            text = text[: len(text) - held_back(text, job.stop)]
        if len(text) > len(job.sent) and text.startswith(job.sent):
            job.emit(Delta(text[len(job.sent) :]))
            job.sent = text
        if reason is not None:
            del self._live[slot]
            job.emit(Finished(reason, len(job.tokens)))
            self.metrics.finished(reason, time.monotonic() - job.arrived)
        elif len(job.tokens) == switch:
            del self._live[slot]
            job.continue_after_switch()
            with self._cond:
                self._waiting.appendleft(job)
