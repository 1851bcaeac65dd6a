"""Why `hr-jax serve` is Starlette on uvicorn, not FastAPI: the HTTP layer's own cost, measured.

The same route in both (`POST /v1/chat/completions`: read a JSON body holding a base64 clip, answer a
small JSON object; no model), each served by uvicorn in its own process on 127.0.0.1, and driven by
`http.client` over keep-alive: requests/s and p50/p99 latency with 1 and
8 concurrent clients. FastAPI is not a dependency of hr_jax: `pip install fastapi` to run this.

    python -m bench.serve_framework --json bench/results/serve_framework.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.serve_load import cpu_name

APPS = {
    "starlette": """
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

async def chat(request: Request):
    body = await request.json()
    n = len(body["messages"][0]["content"][0]["input_audio"]["data"])
    return JSONResponse({"object": "chat.completion", "bytes": n})

app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
""",
    "fastapi": """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()

@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    n = len(body["messages"][0]["content"][0]["input_audio"]["data"])
    return JSONResponse({"object": "chat.completion", "bytes": n})
""",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(name: str, work: Path) -> tuple[subprocess.Popen, str]:
    (work / f"{name}_app.py").write_text(APPS[name])
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", f"{name}_app:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=work, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        if proc.poll() is not None:
            raise RuntimeError(f"{name} did not start: {proc.stderr.read()[-2000:]}")
        select.select([], [], [], 0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not start within 60 s")


def drive(url: str, body: bytes, clients: int, requests: int) -> dict:
    """`requests` POSTs from `clients` threads, each over one keep-alive connection (`http.client`)."""
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(url)
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = requests // clients

    def client() -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        try:
            for _ in range(per_client):
                t0 = time.perf_counter()
                conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}")
                with lock:
                    latencies.append(time.perf_counter() - t0)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(latencies), "requests_per_s": len(latencies) / wall,
            "p50_ms": 1e3 * float(np.percentile(latencies, 50)),
            "p99_ms": 1e3 * float(np.percentile(latencies, 99))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serve_framework", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--clip-seconds", type=float, default=30.0, help="the body's clip: 16-bit WAV, base64")
    ap.add_argument("--work", default="runs/serve_framework")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    clip = base64.b64encode(os.urandom(int(a.clip_seconds * 32000) + 44)).decode()
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": clip, "format": "wav"}}]}]}).encode()  # fmt: skip
    rows = []
    for name in APPS:
        proc, url = serve(name, work)
        try:
            drive(url, body, 1, 50)  # warm-up
            for clients in (1, 8):
                rows.append({"framework": name, **drive(url, body, clients, a.requests)})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    out = {"cpu": cpu_name(), "cores": os.cpu_count(), "body_bytes": len(body), "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
