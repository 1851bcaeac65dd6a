"""Load benchmark of `hr-jax serve`: K concurrent streaming clients (1, 4, 16) sending 30 s clips, at
r = 0 and r = 0.6, against the same requests sent one at a time through `hr_jax.generate_batch`.

Per (model, ratio, K): requests/s, output tokens/s, time to first token p50/p99 (the first stream
chunk, which the server sends once the request's first token is chosen) and latency p50/p99, measured
at the client (a real `openai` client, 127.0.0.1 only). Every reply is exactly `--max-tokens` tokens
(the server's `ignore_eos`, the baseline's model with no stop token), so both sides do the same
work. The server runs first, alone; the sequential baseline runs after it has exited.

    python -m bench.serve_load --models demo,small --json bench/results/serve_load.json

`small` is the `bench.presets` shape with random weights (built here, converted once into --work).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import io
import json
import os
import platform
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

CLIENTS = (1, 4, 16)
STARTUP_S = 600.0
REQUEST_S = 600.0
PROMPT = "Describe the audio."


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def checkpoint(name: str, work: Path) -> str:
    """`demo`, or a converted random-weight checkpoint of the preset `name` (built once into `work`)."""
    if name == "demo":
        return "demo"
    from bench.presets import preset_config  # noqa: F401 - checks the name
    from hr_jax.checkpoint import convert
    from hr_jax.testing.checkpoints import build_random_checkpoint
    from models.qwen2_5_omni.presets import presets

    out = work / name / "jax"
    if not (out / "hr_jax_config.json").exists():
        cfg = presets()[name]
        # the tiny tokenizer (512 BPE tokens) with the special tokens at the top of the preset's vocabulary
        special = {"first_special_id": cfg["text_config"]["vocab_size"] - 14}
        hf = build_random_checkpoint(work / name / "hf", {**cfg, **special}, seed=0)
        convert(hf, out, dtype="float32")
    return str(out)


def clips(n: int, seconds: float) -> list[np.ndarray]:
    from bench.hr_jax_bench import synth_waves

    return synth_waves(seconds, n, seed=7)


def wav_base64(wave: np.ndarray) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


class Server:
    def __init__(self, ckpt: str, args: list[str], log: Path):
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "hr_jax.cli", "serve", "--ckpt", ckpt, "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.monotonic() + STARTUP_S
        self.url = None
        while self.url is None and time.monotonic() < deadline and self.proc.poll() is None:
            if select.select([self.proc.stdout], [], [], 1.0)[0]:
                line = self.proc.stdout.readline()
                if "listening on " in line:
                    self.url = line.rsplit("listening on ", 1)[1].strip()
        if self.url is None:
            self.stop()
            raise RuntimeError(f"the server did not start; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


@dataclasses.dataclass
class Result:
    ttft: list[float]
    latency: list[float]
    tokens: int
    wall: float

    def row(self) -> dict:
        n = len(self.latency)
        p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
        return {
            "requests": n,
            "requests_per_s": n / self.wall,
            "output_tokens_per_s": self.tokens / self.wall,
            "ttft_p50_s": p(self.ttft, 50),
            "ttft_p99_s": p(self.ttft, 99),
            "latency_p50_s": p(self.latency, 50),
            "latency_p99_s": p(self.latency, 99),
        }


def load(url: str, audio: list[str], ratio: float, clients: int, requests: int, max_tokens: int) -> Result:
    """`requests` streamed requests from `clients` threads, each sending its next request when the last
    one is done."""
    import openai

    todo: queue.Queue[int] = queue.Queue()
    for i in range(requests):
        todo.put(i)
    ttft, latency, tokens, errors = [], [], [0], []
    lock = threading.Lock()

    def client() -> None:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=REQUEST_S)
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            clip = {"data": audio[i % len(audio)], "format": "wav"}
            content = [{"type": "input_audio", "input_audio": clip}, {"type": "text", "text": PROMPT}]
            t0 = time.perf_counter()
            first = None
            try:
                stream = c.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": content}], max_tokens=max_tokens,
                    temperature=0, stream=True, extra_body={"audio_pruning_ratio": ratio, "ignore_eos": True},
                )  # fmt: skip
                n = 0
                for chunk in stream:
                    if first is None:  # the first chunk leaves once the first token is chosen
                        first = time.perf_counter() - t0
                    if chunk.usage is not None:
                        n = chunk.usage.completion_tokens
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))
                continue
            with lock:
                ttft.append(first if first is not None else time.perf_counter() - t0)
                latency.append(time.perf_counter() - t0)
                tokens[0] += n

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(REQUEST_S * requests)
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return Result(ttft, latency, tokens[0], time.perf_counter() - t0)


def sequential(ckpt: str, waves: list[np.ndarray], ratio: float, requests: int, max_tokens: int) -> Result:
    """The same requests one at a time through `generate_batch` (features included), after a warm-up."""
    import hr_jax

    model = dataclasses.replace(hr_jax.load(ckpt), stop_ids=())  # exactly max_tokens, as the server's
    ttft, latency, tokens = [], [], 0
    t_all = None
    for i in range(-1, requests):  # request -1 compiles
        t0 = time.perf_counter()
        batch = hr_jax.make_batch(model, [waves[max(i, 0) % len(waves)]], PROMPT)
        t_batch = time.perf_counter() - t0
        out = hr_jax.generate_batch(model, batch, ratio, max_new_tokens=max_tokens)
        if i < 0:
            t_all = time.perf_counter()
            continue
        ttft.append(t_batch + out.prefill_s)
        latency.append(time.perf_counter() - t0)
        tokens += int(out.num_generated[0])
    return Result(ttft, latency, tokens, time.perf_counter() - t_all)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serve_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="demo,small", help="demo and/or bench presets (random weights)")
    ap.add_argument("--ratios", default="0,0.6")
    ap.add_argument("--clients", default=",".join(map(str, CLIENTS)))
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of each clip")
    ap.add_argument("--requests", type=int, default=32, help="requests per run, at most")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--work", default="runs/serve_load", help="checkpoints and server logs")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    ratios = [float(r) for r in a.ratios.split(",")]
    ks = [int(k) for k in a.clients.split(",")]
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    waves = clips(8, a.seconds)
    audio = [wav_base64(w) for w in waves]
    records = []
    for name in a.models.split(","):
        ckpt = checkpoint(name, work)
        server = Server(ckpt, ["--served-model-name", "bench", "--max-batch", str(a.max_batch),
                               "--max-queue", "1024", "--max-tokens-limit", str(max(a.max_tokens, 1024))],
                        work / f"server-{name}.log")  # fmt: skip
        try:
            for ratio in ratios:  # warm-up: every prefill group size and the decode programs compile
                for k in ks:  # as measured: the same reply length, so the same cache capacities
                    load(server.url, audio, ratio, k, k, a.max_tokens)
            for ratio in ratios:
                for k in ks:
                    n = min(a.requests, max(4 * k, 8))
                    r = load(server.url, audio, ratio, k, n, a.max_tokens)
                    records.append({"model": name, "ratio": ratio, "clients": k, "mode": "server", **r.row()})
                    print(json.dumps(records[-1]), flush=True)
        finally:
            server.stop()
        for ratio in ratios:
            r = sequential(ckpt, waves, ratio, min(a.requests, 16), a.max_tokens)
            records.append({"model": name, "ratio": ratio, "clients": 1, "mode": "sequential", **r.row()})
            print(json.dumps(records[-1]), flush=True)
    out = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "seconds": a.seconds,
        "max_tokens": a.max_tokens,
        "max_batch": a.max_batch,
        "records": records,
    }
    print(table(out))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def table(out: dict) -> str:
    """Markdown: one row per run, with throughput against the sequential baseline and TTFT against r = 0."""
    recs = out["records"]
    base = {(r["model"], r["ratio"]): r for r in recs if r["mode"] == "sequential"}
    ttft0 = {(r["model"], r["clients"], r["mode"]): r["ttft_p50_s"] for r in recs if r["ratio"] == 0.0}
    lines = [
        f"{out['cpu']}, {out['cores']} cores; {out['seconds']:g} s clips, {out['max_tokens']} output tokens "
        f"each, {out['max_batch']} decode slots",
        "",
        "| model | r | clients | req/s | out tok/s | x sequential | TTFT p50 | TTFT p99 | TTFT p50 / r=0 "
        "| latency p50 | latency p99 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in recs:
        b = base.get((r["model"], r["ratio"]))
        speed = r["requests_per_s"] / b["requests_per_s"] if b else float("nan")
        t0 = ttft0.get((r["model"], r["clients"], r["mode"]))
        rel = r["ttft_p50_s"] / t0 if t0 else float("nan")
        who = "sequential" if r["mode"] == "sequential" else str(r["clients"])
        lines.append(
            f"| {r['model']} | {r['ratio']:g} | {who} | {r['requests_per_s']:.2f} "
            f"| {r['output_tokens_per_s']:.0f} | {speed:.2f} | {r['ttft_p50_s']:.3f} | {r['ttft_p99_s']:.3f} "
            f"| {rel:.2f} | {r['latency_p50_s']:.3f} | {r['latency_p99_s']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
