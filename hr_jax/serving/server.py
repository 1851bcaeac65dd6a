"""`hr-jax serve`: the OpenAI-compatible server, in this process, on uvicorn.

SIGTERM (or Ctrl-C) stops admitting: waiting requests get a 503 at once, running ones may finish
within `--drain-seconds`, then are cancelled; the process then exits 0. A second signal exits at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence

import uvicorn

from hr_jax.serving.app import ServeSettings, create_app
from hr_jax.serving.metrics import ServerMetrics
from hr_jax.serving.scheduler import Scheduler

log = logging.getLogger("hr_jax.serve")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which also drains the scheduler on the first exit signal and says where it
    listens once it does (`--port 0` picks a free port)."""

    def __init__(self, config: uvicorn.Config, scheduler: Scheduler, drain_s: float):
        super().__init__(config)
        self.scheduler, self.drain_s = scheduler, drain_s

    def handle_exit(self, sig: int, frame: object) -> None:
        if not self.should_exit:
            print(
                f"hr-jax serve: draining (up to {self.drain_s:g} s), then exiting",
                file=sys.stderr,
                flush=True,
            )
            self.scheduler.drain(self.drain_s)
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # uvicorn re-raises the signal after its shutdown, so the process would die of it; a
                # drained shutdown is a clean exit (status 0).
                getattr(self, "_captured_signals", []).clear()

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                print(f"hr-jax serve: listening on http://{host}:{port}", flush=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def serve_main(argv: Sequence[str] | None = None) -> int:
    from hr_jax.cli_options import add_model_options, load_model
    from hr_jax.pruning.methods import ALL_METHODS

    ap = argparse.ArgumentParser(
        prog="hr-jax serve",
        description="OpenAI-compatible chat server for audio, "
        "with per-request audio-token pruning and continuous batching.",
    )
    add_model_options(ap)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000, help="port (0: a free one, printed at start)")
    ap.add_argument("--served-model-name", default=None, help="the model's name in the API (default: --ckpt)")
    ap.add_argument("--max-batch", type=_positive_int, default=8, help="decode slots (largest running batch)")
    ap.add_argument("--max-queue", type=_positive_int, default=64, help="waiting requests before 429")
    ap.add_argument(
        "--decode-steps",
        type=_positive_int,
        default=4,
        help="tokens each slot decodes per engine turn (more: less overhead, later admission)",
    )
    ap.add_argument(
        "--max-prefill-rows",
        type=_positive_int,
        default=4,
        help="requests admitted (prefilled) per engine turn; the running slots decode between turns",
    )
    ap.add_argument(
        "--max-tokens-limit", type=_positive_int, default=1024, help="largest max_tokens accepted"
    )
    ap.add_argument("--default-max-tokens", type=_positive_int, default=256, help="max_tokens when not sent")
    ap.add_argument("--max-audio-seconds", type=_positive_float, default=300.0, help="longest audio accepted")
    ap.add_argument("--max-request-mb", type=_positive_float, default=64.0, help="largest request body (MiB)")
    ap.add_argument(
        "--request-timeout", type=_positive_float, default=600.0, help="seconds a request may take"
    )
    ap.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long running requests may take to finish",
    )
    ap.add_argument("--default-ratio", type=float, default=0.0, help="audio_pruning_ratio when not sent")
    ap.add_argument(
        "--default-method",
        default="headrouter",
        choices=ALL_METHODS,
        help="audio_pruning_method when not sent",
    )
    ap.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    args = ap.parse_args(argv)
    if args.default_max_tokens > args.max_tokens_limit:
        ap.error(
            f"--default-max-tokens {args.default_max_tokens} is over "
            f"--max-tokens-limit {args.max_tokens_limit}"
        )
    if not 0.0 <= args.default_ratio < 1.0:
        ap.error(f"--default-ratio must be in [0, 1), got {args.default_ratio}")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(args.log_level.upper())

    # The CPU backend cannot donate buffers: the scheduler's caches are still consumed, nothing to say.
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    model = load_model(args)
    metrics = ServerMetrics(args.max_batch)
    scheduler = Scheduler(
        model,
        metrics,
        args.max_batch,
        args.max_queue,
        args.decode_steps,
        max_prefill_rows=args.max_prefill_rows,
    )
    metrics.slots = scheduler.slots
    scheduler.warm_up()
    settings = ServeSettings(
        model_name=args.served_model_name or args.ckpt,
        aliases=tuple({args.ckpt, model.name} - {args.served_model_name}),
        max_body_bytes=int(args.max_request_mb * (1 << 20)),
        max_audio_seconds=args.max_audio_seconds,
        max_tokens_limit=args.max_tokens_limit,
        default_max_tokens=args.default_max_tokens,
        request_timeout_s=args.request_timeout,
        default_ratio=args.default_ratio,
        default_method=args.default_method,
    )
    app = create_app(model, scheduler, settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="off",
        timeout_graceful_shutdown=max(args.drain_seconds, 0.0) + 10.0,
    )
    server = DrainingServer(config, scheduler, max(args.drain_seconds, 0.0))
    scheduler.start()
    try:
        server.run()
    finally:
        scheduler.stop()
    print("hr-jax serve: stopped", file=sys.stderr, flush=True)
    return 0
