"""The HTTP side: a Starlette app with OpenAI's chat-completions route, `/v1/models`, `/health` and
`/metrics`, in front of a `Scheduler`.

A request is checked (`protocol`), its audio decoded and its features computed off the event loop,
then queued; its handler waits for the scheduler's events, bounded by the request's timeout. A client
that disconnects cancels its request (the scheduler frees its slot on its next turn). Every failure is
an OpenAI error object with its status, never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hr_jax.batch import make_batch
from hr_jax.engine import PruningSpec, SamplingSpec
from hr_jax.engine.planning import keep_counts
from hr_jax.model import Model
from hr_jax.prompt import DEFAULT_PROMPT, FAMILY_DEFAULT
from hr_jax.serving import protocol
from hr_jax.serving.errors import RequestError
from hr_jax.serving.jobs import Admitted, Delta, Event, Failed, Finished, Job
from hr_jax.serving.metrics import CONTENT_TYPE
from hr_jax.serving.scheduler import Scheduler

log = logging.getLogger("hr_jax.serve")
DISCONNECT_POLL_S = 0.1


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """The limits and defaults of one server: its model's names, the largest body (bytes), the longest
    audio (seconds), the largest and default `max_tokens`, the per-request timeout (seconds), the
    pruning a request gets when it names none."""

    model_name: str
    aliases: tuple[str, ...] = ()
    max_body_bytes: int = 64 << 20
    max_audio_seconds: float = 300.0
    max_tokens_limit: int = 1024
    default_max_tokens: int = 256
    request_timeout_s: float = 600.0
    default_ratio: float = 0.0
    default_method: str = "headrouter"


def error_response(err: RequestError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


async def read_body(request: Request, limit: int) -> object:
    """The JSON body, refused with 413 past `limit` bytes (before reading it, when the length is sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            f"the request body is {int(declared)} bytes, over the limit of {limit}",
            status=413,
            code="body_too_large",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                f"the request body is over the limit of {limit} bytes", status=413, code="body_too_large"
            )
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(f"the request body is not valid JSON ({e})") from None


def build_job(model: Model, req: protocol.ChatRequest, settings: ServeSettings, cid: str) -> Job:
    """The scheduler's job for a checked request: audio checked and turned into features, token
    budget checked. Runs in a worker thread (it is CPU work)."""
    seconds = req.waveform.shape[0] / req.sample_rate
    if seconds > settings.max_audio_seconds:
        raise RequestError(
            f"the audio is {seconds:.1f} s long, over this server's limit of "
            f"{settings.max_audio_seconds:g} s",
            "messages",
        )
    system = FAMILY_DEFAULT if req.system_prompt is None else req.system_prompt
    try:
        # truncation=False: the server's own limit (checked above) is the one that applies
        batch = make_batch(
            model, [(req.waveform, req.sample_rate)], [req.prompt or DEFAULT_PROMPT], system, truncation=False
        )
    except ValueError as e:  # empty, NaN, silent audio; too long for the model
        raise RequestError(f"the audio was refused: {e}", "messages") from None
    max_tokens = settings.default_max_tokens if req.max_tokens is None else req.max_tokens
    if max_tokens > settings.max_tokens_limit:
        raise RequestError(
            f"max_tokens={max_tokens} is over this server's limit of {settings.max_tokens_limit}",
            "max_tokens",
        )
    prompt_tokens = int(batch.attention_mask.sum())
    positions = model.config.text.max_position_embeddings
    if prompt_tokens + max_tokens > positions:
        raise RequestError(
            f"the prompt ({prompt_tokens} tokens, audio included) and max_tokens={max_tokens} "
            f"make more than the model's {positions} positions",
            "max_tokens",
        )
    num_audio = int((batch.input_ids == model.config.audio_token_id).sum())
    if req.ratio > 0 and num_audio and keep_counts([num_audio], req.ratio)[0] == 0:
        raise RequestError(
            f"audio_pruning_ratio={req.ratio} keeps none of the clip's {num_audio} audio tokens",
            "audio_pruning_ratio",
        )
    return Job(
        id=cid,
        batch=batch,
        pruning=PruningSpec(req.ratio, req.method, seed=req.seed),
        sampling=SamplingSpec(max_tokens, req.temperature, req.top_p, req.seed),
        stop=req.stop,
        emit=lambda event: None,  # set by the handler
        ignore_eos=req.ignore_eos,
        deadline=time.monotonic() + settings.request_timeout_s,
    )


def create_app(model: Model, scheduler: Scheduler, settings: ServeSettings) -> Starlette:
    """The ASGI app serving `model` through `scheduler`."""
    names = (settings.model_name, *settings.aliases)

    async def chat_completions(request: Request) -> Response:
        cid = protocol.completion_id()
        try:
            body = await read_body(request, settings.max_body_bytes)
            req = protocol.parse_chat_request(body, settings.default_ratio, settings.default_method)
            if req.model is not None and req.model not in names:
                raise RequestError(
                    f"the model {req.model!r} does not exist; this server serves {settings.model_name!r}",
                    "model",
                    404,
                    "model_not_found",
                )
            job = await run_in_threadpool(build_job, model, req, settings, cid)
        except RequestError as err:
            return error_response(err)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        job.emit = lambda event: loop.call_soon_threadsafe(events.put_nowait, event)
        try:
            scheduler.submit(job)
        except RequestError as err:
            return error_response(err)
        pruning = {"ratio": req.ratio, "method": req.method}
        if req.stream:
            return StreamingResponse(
                stream_events(job, events, req, pruning, settings.model_name),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await complete(request, job, events, pruning, settings.model_name)

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": settings.model_name, "object": "model", "created": 0, "owned_by": "hr_jax"}],
            }
        )

    async def health(request: Request) -> Response:
        waiting, running = scheduler.load()
        return JSONResponse({"status": "ok", "waiting": waiting, "running": running})

    async def metrics(request: Request) -> Response:
        return Response(scheduler.metrics.render(), media_type=CONTENT_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(RequestError(f"no route {request.method} {request.url.path}", status=404))

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(
            RequestError(f"{request.method} is not allowed on {request.url.path}", status=405)
        )

    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(RequestError(f"internal error: {type(exc).__name__}: {exc}", status=500))

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: method_not_allowed, Exception: internal},
    )


async def next_event(job: Job, events: asyncio.Queue[Event]) -> Event:
    """The scheduler's next event for `job`, waiting no longer than the request's deadline (plus a
    little for the scheduler to report it)."""
    remaining = job.deadline - time.monotonic() + 5.0
    try:
        return await asyncio.wait_for(events.get(), timeout=max(remaining, 0.1))
    except asyncio.TimeoutError:
        job.cancelled.set()
        return Failed(RequestError(f"request {job.id} timed out", status=504, code="timeout"))


async def complete(
    request: Request, job: Job, events: asyncio.Queue[Event], pruning: dict, model_name: str
) -> Response:
    """A whole (non-streamed) reply; a client that disconnects meanwhile cancels the request."""

    async def watch() -> None:
        while not job.cancelled.is_set():
            if await request.is_disconnected():
                job.cancelled.set()
                return
            await asyncio.sleep(DISCONNECT_POLL_S)

    watcher = asyncio.create_task(watch())
    admitted, parts = None, []
    try:
        while True:
            event = await next_event(job, events)
            if isinstance(event, Failed):
                return error_response(event.error)
            if isinstance(event, Admitted):
                admitted = event
            elif isinstance(event, Delta):
                parts.append(event.text)
            elif isinstance(event, Finished):
                use = protocol.usage(
                    admitted.prompt_tokens, event.completion_tokens, admitted.num_audio, admitted.kept_audio
                )
                info = {
                    **pruning,
                    "audio_tokens": admitted.num_audio,
                    "audio_tokens_kept": admitted.kept_audio,
                    "alpha": admitted.alpha,
                }
                return JSONResponse(
                    protocol.completion(job.id, model_name, "".join(parts), event.reason, use, info)
                )
    finally:
        watcher.cancel()
        job.cancelled.set()  # a no-op once finished; frees the slot if the handler itself was cancelled


def sse(data: dict | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


async def stream_events(
    job: Job, events: asyncio.Queue[Event], req: protocol.ChatRequest, pruning: dict, model_name: str
) -> AsyncIterator[bytes]:
    """Server-sent events: a role chunk (with the audio tokens kept), content chunks, a finish chunk, the
    usage chunk, `[DONE]`. An error after the stream opened is sent as an error event. Starlette cancels
    this generator when the client disconnects: the request is then cancelled."""
    admitted = None
    try:
        while True:
            event = await next_event(job, events)
            if isinstance(event, Failed):
                yield sse(event.error.body())
                break
            if isinstance(event, Admitted):
                admitted = event
                info = {
                    **pruning,
                    "audio_tokens": event.num_audio,
                    "audio_tokens_kept": event.kept_audio,
                    "alpha": event.alpha,
                }
                yield sse(
                    protocol.chunk(
                        job.id, model_name, {"role": "assistant", "content": ""}, audio_pruning=info
                    )
                )
            elif isinstance(event, Delta):
                yield sse(protocol.chunk(job.id, model_name, {"content": event.text}))
            elif isinstance(event, Finished):
                yield sse(protocol.chunk(job.id, model_name, {}, event.reason))
                if req.include_usage:
                    use = protocol.usage(
                        admitted.prompt_tokens,
                        event.completion_tokens,
                        admitted.num_audio,
                        admitted.kept_audio,
                    )
                    yield sse(protocol.chunk(job.id, model_name, None, usage=use))
                break
        yield sse("[DONE]")
    finally:
        job.cancelled.set()
