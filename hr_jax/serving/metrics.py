"""The server's metrics in Prometheus' text exposition format (version 0.0.4), for `GET /metrics`.

Updated by the scheduler thread and read by the HTTP handlers: every update and the rendering hold
one lock.
"""

from __future__ import annotations

import collections
import threading
import time

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RATE_WINDOW_S = 10.0  # tokens/s is measured over the last this many seconds


class Histogram:
    """Cumulative buckets, sum and count of observations."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds, self.counts, self.sum, self.count = bounds, [0] * len(bounds), 0.0, 0

    def observe(self, value: float) -> None:
        for i, b in enumerate(self.bounds):
            if value <= b:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{b:g}"}} {c}' for b, c in zip(self.bounds, self.counts, strict=True)]
        return out + [
            f'{name}_bucket{{le="+Inf"}} {self.count}',
            f"{name}_sum {self.sum:.6f}",
            f"{name}_count {self.count}",
        ]


class ServerMetrics:
    """What `/metrics` reports: queue depth and running batch (gauges), requests by outcome, prompt and
    generated tokens (counters), generated tokens/s over the last `RATE_WINDOW_S`, and histograms of
    time to first token, request latency and the share of audio tokens kept."""

    def __init__(self, slots: int):
        self._lock = threading.Lock()
        self.slots = slots
        self.queue_depth = 0
        self.running = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self.ttft = Histogram(LATENCY_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.kept_ratio = Histogram(RATIO_BUCKETS)

    def set_load(self, queue_depth: int, running: int) -> None:
        with self._lock:
            self.queue_depth, self.running = queue_depth, running

    def admitted(self, prompt_tokens: int, num_audio: int, kept_audio: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            if num_audio:
                self.kept_ratio.observe(kept_audio / num_audio)

    def first_token(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def generated(self, tokens: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.generated_tokens += tokens
            self._recent.append((now, tokens))

    def finished(self, outcome: str, seconds: float | None) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            if seconds is not None:
                self.latency.observe(seconds)

    def tokens_per_second(self) -> float:
        cutoff = time.monotonic() - RATE_WINDOW_S
        with self._lock:
            while self._recent and self._recent[0][0] < cutoff:
                self._recent.popleft()
            return sum(n for _, n in self._recent) / RATE_WINDOW_S

    def render(self) -> str:
        rate = self.tokens_per_second()
        with self._lock:
            out = [
                "# HELP hr_jax_queue_depth Requests waiting for a decode slot.",
                "# TYPE hr_jax_queue_depth gauge",
                f"hr_jax_queue_depth {self.queue_depth}",
                "# HELP hr_jax_running_requests Requests holding a decode slot (the running batch).",
                "# TYPE hr_jax_running_requests gauge",
                f"hr_jax_running_requests {self.running}",
                "# HELP hr_jax_decode_slots Decode slots (the largest running batch).",
                "# TYPE hr_jax_decode_slots gauge",
                f"hr_jax_decode_slots {self.slots}",
                "# HELP hr_jax_requests_total Finished requests by outcome.",
                "# TYPE hr_jax_requests_total counter",
                *[f'hr_jax_requests_total{{outcome="{k}"}} {v}' for k, v in sorted(self.outcomes.items())],
                "# HELP hr_jax_prompt_tokens_total Prompt tokens admitted (audio tokens before pruning).",
                "# TYPE hr_jax_prompt_tokens_total counter",
                f"hr_jax_prompt_tokens_total {self.prompt_tokens}",
                "# HELP hr_jax_generated_tokens_total Tokens generated.",
                "# TYPE hr_jax_generated_tokens_total counter",
                f"hr_jax_generated_tokens_total {self.generated_tokens}",
                f"# HELP hr_jax_generated_tokens_per_second Tokens generated per second over the last "
                f"{RATE_WINDOW_S:g} s.",
                "# TYPE hr_jax_generated_tokens_per_second gauge",
                f"hr_jax_generated_tokens_per_second {rate:.3f}",
                "# HELP hr_jax_time_to_first_token_seconds From a request's arrival to its first token.",
                "# TYPE hr_jax_time_to_first_token_seconds histogram",
                *self.ttft.lines("hr_jax_time_to_first_token_seconds"),
                "# HELP hr_jax_request_latency_seconds From a request's arrival to its last token.",
                "# TYPE hr_jax_request_latency_seconds histogram",
                *self.latency.lines("hr_jax_request_latency_seconds"),
                "# HELP hr_jax_audio_kept_ratio Share of a request's audio tokens kept by pruning.",
                "# TYPE hr_jax_audio_kept_ratio histogram",
                *self.kept_ratio.lines("hr_jax_audio_kept_ratio"),
            ]
        return "\n".join(out) + "\n"
