"""`hr-jax serve` against the real `openai` client: a real server process on 127.0.0.1 (a free port,
started and stopped here, every wait bounded) serving the shipped model.

Plain, streamed and pruned requests; greedy replies equal to `hr_jax.generate` while unrelated requests
are admitted mid-decode; every mistake an OpenAI error with its status; a full queue, a disconnected
stream, the metrics, and SIGTERM's drain.
"""

from __future__ import annotations

import base64
import io
import json
import math
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from conftest import subprocess_env, waveform

openai = pytest.importorskip("openai")

STARTUP_S = 240.0  # importing JAX, loading the model and compiling the decode program, on a loaded CI box
REQUEST_S = 120.0
SERVER_ARGS = ("--max-batch", "4", "--max-queue", "3", "--decode-steps", "2", "--max-audio-seconds", "20",
               "--max-request-mb", "1", "--max-tokens-limit", "2048", "--request-timeout", "120")  # fmt: skip
PROMPT = "What is heard?"


class Server:
    """`hr-jax serve --ckpt demo` in its own process; `url` once it listens."""

    def __init__(self, tmp_path, *args: str, devices: int | None = None):
        self.log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "hr_jax.cli", "serve", "--ckpt", "demo", "--port", "0", *args]
        out = subprocess.PIPE
        self.proc = subprocess.Popen(cmd, env=subprocess_env(devices), stdout=out, stderr=self.log, text=True)
        self.url = self._wait_listening()

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()
                if "listening on " in line:
                    return line.rsplit("listening on ", 1)[1].strip()
            if self.proc.poll() is not None:
                break
        log = self.stderr()
        self.stop()
        raise AssertionError(f"the server did not start:\n{log[-3000:]}")

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def client(self, timeout: float = REQUEST_S):
        return openai.OpenAI(base_url=self.url + "/v1", api_key="none", max_retries=0, timeout=timeout)

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.status, r.read().decode()

    def metrics(self) -> dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families

        out = {}
        for family in text_string_to_metric_families(self.get("/metrics")[1]):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[s.name + (f"{{{labels}}}" if labels else "")] = s.value
        return out

    def wait_for(self, name: str, predicate, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.metrics().get(name, 0.0)
            if predicate(value):
                return value
            time.sleep(0.05)
        raise AssertionError(f"{name} never met the condition (last {value})")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("serve"), *SERVER_ARGS)
    yield srv
    srv.stop()


def encode(wave: np.ndarray, fmt: str = "wav", subtype: str | None = None) -> str:
    """Base64 of `wave` (16 kHz) as a `fmt` file: float32 WAV by default."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format=fmt.upper(), subtype=subtype or ("FLOAT" if fmt == "wav" else None))
    return base64.b64encode(buf.getvalue()).decode()


def audio_message(data: str, fmt: str = "wav", text: str = PROMPT) -> list[dict]:
    audio = {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
    parts = [audio, {"type": "text", "text": text}]
    return [{"role": "user", "content": parts}]


CLIPS = {seed: waveform(4.0, seed) for seed in range(1, 7)}  # one bucket: every prefill shares its programs


def ask(client, seed: int = 1, **kw):
    kw.setdefault("max_tokens", 16)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="demo", messages=audio_message(encode(CLIPS[seed])), **kw)


# ------------------------------------------------------------------------------------------ requests


def test_a_plain_request_answers_with_text_and_counts_its_tokens(server):
    r = ask(server.client())
    assert r.object == "chat.completion" and r.model == "demo"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    u = r.usage
    assert 0 < u.prompt_tokens_details.audio_tokens < u.prompt_tokens
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens and 1 <= u.completion_tokens <= 16
    assert r.model_extra["audio_pruning"]["audio_tokens_kept"] == u.prompt_tokens_details.audio_tokens


def test_a_streamed_request_sends_the_same_text_in_chunks_then_the_usage(server):
    whole = ask(server.client(), seed=2)
    chunks = list(ask(server.client(), seed=2, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.parametrize("method", ["headrouter", "frame", "fastv"])
def test_a_pruned_request_reports_the_audio_tokens_it_kept(server, method):
    r = ask(server.client(), seed=3, extra_body={"audio_pruning_ratio": 0.6, "audio_pruning_method": method})
    info, n = r.model_extra["audio_pruning"], r.usage.prompt_tokens_details.audio_tokens
    assert info["method"] == method and info["ratio"] == 0.6
    assert info["audio_tokens_kept"] == r.usage.audio_tokens_kept == math.floor(n * 0.4)
    assert (info["alpha"] is not None) == (method == "headrouter")


def test_greedy_replies_equal_the_engine_with_other_requests_admitted_mid_decode(server):
    import hr_jax

    model = hr_jax.load("demo")
    asked = [(4, 0.0, "headrouter"), (5, 0.6, "headrouter"), (6, 0.3, "frame")]
    want = [
        hr_jax.generate(model, CLIPS[s], r, prompt=PROMPT, method=m, max_new_tokens=24) for s, r, m in asked
    ]
    client, got, errors = server.client(), {}, []

    def run(key, seed, **kw):
        try:
            got[key] = ask(client, seed, **kw).choices[0].message.content
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    # Unrelated requests run long (sampled, no stop) while the checked ones arrive one after another.
    long = dict(max_tokens=300, temperature=1.0, extra_body={"ignore_eos": True})
    threads = [threading.Thread(target=run, args=(f"other{i}", i + 1), kwargs=long) for i in range(2)]
    for i, (s, r, m) in enumerate(asked):
        pruning = {"audio_pruning_ratio": r, "audio_pruning_method": m}
        threads.append(
            threading.Thread(target=run, args=(i, s), kwargs=dict(max_tokens=24, extra_body=pruning))
        )
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join(REQUEST_S)
    assert not errors, errors
    assert [got[i] for i in range(len(asked))] == want


def test_a_stop_string_ends_the_reply_before_it(server):
    whole = ask(server.client(), seed=2, max_tokens=24).choices[0].message.content
    stop = whole[len(whole) // 2 : len(whole) // 2 + 3]
    r = ask(server.client(), seed=2, max_tokens=24, stop=[stop])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content == whole[: whole.index(stop)]


def test_an_audio_url_data_url_is_accepted_and_a_remote_url_refused(server):
    data = encode(CLIPS[1])
    content = [{"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{data}"}},
               {"type": "text", "text": PROMPT}]  # fmt: skip
    r = server.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": content}],
                                                max_tokens=16, temperature=0)  # fmt: skip
    assert r.choices[0].message.content == ask(server.client()).choices[0].message.content
    content[0]["audio_url"]["url"] = "http://127.0.0.1:9/clip.wav"
    with pytest.raises(openai.BadRequestError, match="fetches nothing"):
        server.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": content}])


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_mp3_and_flac_clips_are_decoded(server, fmt):
    r = server.client().chat.completions.create(
        model="demo", messages=audio_message(encode(CLIPS[1], fmt), fmt), max_tokens=8, temperature=0
    )
    assert r.usage.prompt_tokens_details.audio_tokens > 0


# ------------------------------------------------------------------------------------------ mistakes


def _wav_bytes(wave: np.ndarray) -> str:
    return encode(wave.astype(np.float32))


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
MISTAKES = {  # name: (messages, extra arguments, the field the error names)
    "bad_base64": (audio_message("not base64 at all!"), {}, "data"),
    "unknown_format": (audio_message(encode(CLIPS[1]), "ogg"), {}, "format"),
    "undecodable_audio": (audio_message(base64.b64encode(b"RIFF....WAVEnot audio").decode()), {}, "data"),
    "empty_audio": (audio_message(""), {}, "data"),
    "silent_audio": (audio_message(_wav_bytes(np.zeros(16000))), {}, "messages"),
    "nan_audio": (audio_message(_wav_bytes(np.full(16000, np.nan))), {}, "messages"),
    "audio_over_the_limit": (audio_message(encode(waveform(21.0, 1), subtype="PCM_16")), {}, "messages"),
    "ratio_out_of_range": (None, {"extra_body": {"audio_pruning_ratio": 1.0}}, "audio_pruning_ratio"),
    "negative_ratio": (None, {"extra_body": {"audio_pruning_ratio": -0.1}}, "audio_pruning_ratio"),
    "unknown_method": (None, {"extra_body": {"audio_pruning_method": "magic"}}, "audio_pruning_method"),
    "too_many_tokens": (None, {"max_tokens": 5000}, "max_tokens"),
    "n_above_1": (None, {"n": 2}, "n"),
    "image_part": ([{"role": "user", "content": [IMAGE]}], {}, "content"),
    "no_audio": ([{"role": "user", "content": "Hello"}], {}, "messages"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_is_a_400_naming_its_field(server, name):
    messages, extra, field = MISTAKES[name]
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(
            model="demo", messages=messages or audio_message(encode(CLIPS[1])), **extra
        )
    assert info.value.status_code == 400
    error = info.value.body
    assert error["type"] == "invalid_request_error" and field in (error["param"] or "")
    assert "Traceback" not in error["message"]


def test_an_unknown_model_is_a_404(server):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        server.client().chat.completions.create(model="gpt-9", messages=audio_message(encode(CLIPS[1])))


def test_a_body_over_the_limit_is_a_413(server):
    big = encode(waveform(13.0, 1))  # 13 s of float32 WAV: 1.1 MB of base64, over the 1 MiB limit
    assert len(big) > 1 << 20
    with pytest.raises(openai.APIStatusError) as info:
        server.client().chat.completions.create(model="demo", messages=audio_message(big))
    assert info.value.status_code == 413


def test_a_body_that_is_not_json_is_a_400(server):
    req = urllib.request.Request(server.url + "/v1/chat/completions", data=b"{not json",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 400 and "not valid JSON" in json.loads(info.value.read())["error"]["message"]


# ------------------------------------------------------------------------------------------ load


def _long_stream(client, seed: int):
    """A streamed request that runs for 2,000 tokens unless closed."""
    return ask(client, seed, max_tokens=2000, stream=True, extra_body={"ignore_eos": True})


def test_a_full_queue_answers_429_and_closed_streams_free_their_slots(server):
    client = server.client()
    running = [_long_stream(client, 1 + i % 6) for i in range(4)]
    for s in running:
        next(iter(s))  # each holds a slot once its first chunk arrives
    server.wait_for("hr_jax_running_requests", lambda v: v == 4)
    waiting = [threading.Thread(target=lambda: ask(server.client(), 1, max_tokens=2)) for _ in range(3)]
    for t in waiting:
        t.start()
    server.wait_for("hr_jax_queue_depth", lambda v: v == 3)
    with pytest.raises(openai.RateLimitError) as info:
        ask(client, 1)
    assert info.value.status_code == 429
    cancelled = server.metrics().get("hr_jax_requests_total{outcome=cancelled}", 0.0)
    for s in running:
        s.close()
    server.wait_for("hr_jax_requests_total{outcome=cancelled}", lambda v: v >= cancelled + 4, timeout=30)
    for t in waiting:
        t.join(REQUEST_S)
    server.wait_for("hr_jax_running_requests", lambda v: v == 0, timeout=30)


def test_metrics_are_prometheus_text_with_queue_batch_rate_and_histograms(server):
    ask(server.client())
    m = server.metrics()
    for name in ("hr_jax_queue_depth", "hr_jax_running_requests", "hr_jax_generated_tokens_per_second",
                 "hr_jax_generated_tokens_total", "hr_jax_prompt_tokens_total"):  # fmt: skip
        assert name in m
    hists = (
        "hr_jax_time_to_first_token_seconds",
        "hr_jax_request_latency_seconds",
        "hr_jax_audio_kept_ratio",
    )
    for hist in hists:
        assert m[f"{hist}_count"] >= 1 and m[hist + "_bucket{le=+Inf}"] == m[f"{hist}_count"]
    assert m["hr_jax_generated_tokens_total"] >= 1


def test_models_and_health_answer(server):
    assert [x.id for x in server.client().models.list().data] == ["demo"]
    status, body = server.get("/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_a_tensor_parallel_server_gives_the_single_device_replies(server, tmp_path):
    srv = Server(tmp_path, "--model-parallel", "2", "--max-batch", "3", devices=4)
    try:
        assert srv.metrics()["hr_jax_decode_slots"] == 4  # 3 rounded up to split over the 2-way data axis
        for seed, ratio in ((1, 0.0), (3, 0.6)):
            kw = dict(max_tokens=16, extra_body={"audio_pruning_ratio": ratio})
            want = ask(server.client(), seed, **kw).choices[0].message.content
            assert ask(srv.client(), seed, **kw).choices[0].message.content == want
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------ shutdown


def test_sigterm_lets_a_running_request_finish_refuses_new_ones_and_exits_0(tmp_path):
    srv = Server(tmp_path, "--drain-seconds", "60", "--decode-steps", "2")
    try:
        stream = ask(srv.client(), 1, max_tokens=120, stream=True, extra_body={"ignore_eos": True})
        chunks = [next(iter(stream))]
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while "draining" not in srv.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises((openai.APIConnectionError, openai.InternalServerError)):
            ask(srv.client(timeout=10), 2)  # the listener is closed (or, racing it, a 503)
        chunks += list(stream)
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert chunks[-1].usage.completion_tokens == 120
        assert srv.proc.wait(60) == 0
        assert "draining" in srv.stderr()
    finally:
        srv.stop()


def test_the_serve_command_is_listed_and_documents_its_options(capsys):
    from hr_jax.cli import COMMANDS
    from hr_jax.serving.server import serve_main

    assert "serve" in COMMANDS
    with pytest.raises(SystemExit):
        serve_main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--max-batch", "--max-queue", "--model-parallel", "--drain-seconds", "--port"):
        assert flag in out
