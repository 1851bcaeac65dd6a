"""The GPU check: real-width parity in bfloat16 against float32, cuDNN attention against XLA's, and the
3B shape timed against transformers on 5 minutes of audio.

    python -m bench.gpu_check --out DIR                      # on a GPU (about 6-7 minutes on one H200)
    python -m bench.gpu_check --out DIR --preset tiny --seconds 4 --parity-size tiny   # CPU smoke run

Writes `DIR/gpu_check.json` (every number) and `DIR/gpu_check.md` (the table for RESULTS.md), plus the
raw benchmark records of `bench.run` in `DIR/timing.json`.

1. Parity: a random thinker at the released widths (`--parity-size`, depth cut to `--parity-layers`),
   written by transformers' `save_pretrained`, converted in float32 and in bfloat16; relative error of
   the bfloat16 logits against the float32 ones on the device, and of hr_jax float32 against
   transformers float32 when torch is installed.
2. Attention: the bfloat16 prefill logits with the `cudnn` kernel (on a CPU: `streaming`) against the
   `dense` one (XLA's plain attention), each an `EngineOptions` of the model.
3. Timing: `bench.run` on `--preset` with `--seconds` of audio, ratios 0 and 0.6, batch 1, hr_jax and
   transformers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hr_jax.audio import SAMPLE_RATE


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _waveform(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * 150.0 * (h + 1) * t) / (h + 1) for h in range(4))
    return (0.2 * x + 0.05 * rng.standard_normal(t.shape[0])).astype(np.float32)


def _forward(model, batch) -> np.ndarray:
    import jax

    from hr_jax.engine import forward

    jax.clear_caches()  # the attention implementation is read when a function is traced
    return np.asarray(forward(model, batch), np.float32)


def parity(work: Path, size: str, layers: int, seconds: float) -> dict[str, Any]:
    from hr_jax.batch import make_batch
    from hr_jax.checkpoint import convert
    from hr_jax.engine_options import EngineOptions
    from hr_jax.model import load
    from hr_jax.testing.checkpoints import build_tiny_checkpoint, load_reference, released_config

    overrides = None if size == "tiny" else released_config(size, layers, 1)
    hf = build_tiny_checkpoint(work / "hf", config_overrides=overrides, writer="save_pretrained")
    f32 = load(convert(hf, work / "f32", dtype="float32"))
    bf16 = load(convert(hf, work / "bf16", dtype="bfloat16"))
    batch = make_batch(f32, [_waveform(seconds)], "What do you hear?")
    out: dict[str, Any] = {"size": size, "text_layers": f32.config.text.num_hidden_layers, "seconds": seconds}
    logits32 = _forward(f32, batch)
    got_bf16 = _forward(bf16, batch)
    out["bf16_vs_f32"] = _rel(got_bf16, logits32)
    impls = ("cudnn", "dense") if _backend() == "gpu" else ("streaming", "dense")
    got = {impl: _forward(bf16.replace(options=EngineOptions(attention=impl)), batch) for impl in impls}
    out["attention"] = {"impls": list(impls), "rel_err": _rel(got[impls[0]], got[impls[1]])}
    try:
        import torch
    except ImportError:
        out["hr_jax_f32_vs_transformers_f32"] = None
    else:
        ref = load_reference(hf)
        inputs = {k: torch.from_numpy(v).long() if "mask" in k or "ids" in k else torch.from_numpy(v)
                  for k, v in batch.to_dict().items()}  # fmt: skip
        with torch.no_grad():
            want = ref(**inputs).logits.float().numpy()
            ref_bf16 = ref.to(torch.bfloat16)
            inputs["input_features"] = inputs["input_features"].to(torch.bfloat16)
            want_bf16 = ref_bf16(**inputs).logits.float().numpy()
        out["hr_jax_f32_vs_transformers_f32"] = _rel(logits32, want)
        out["transformers_bf16_vs_f32"] = _rel(want_bf16, want)
        out["hr_jax_bf16_vs_transformers_bf16"] = _rel(got_bf16, want_bf16)
    return out


def _backend() -> str:
    import jax

    return jax.default_backend()


def timing(out_dir: Path, preset: str, seconds: float, quick: bool = False) -> dict[str, Any]:
    path = out_dir / "timing.json"
    cmd = [sys.executable, "-m", "bench.run", "--preset", preset, "--seconds", f"{seconds:g}", "--ratios",
           "0,0.6", "--batch", "1", "--decode-tokens", "32", "--repeats", "3",
           "--json", str(path)]  # fmt: skip
    if quick:  # a smoke run: one repeat, a few decode steps, no machine-floor measurement
        cmd += ["--repeats", "1", "--warmup", "0", "--decode-tokens", "4", "--no-floor"]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr[-2000:], "command": " ".join(cmd)}
    return {"command": " ".join(cmd), "wall_s": time.perf_counter() - start, "table": r.stdout,
            "records": json.loads(path.read_text())}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    p, t = result["parity"], result["timing"]
    lines = [
        f"GPU check on {result['device']} ({result['backend']}), {result['wall_s']:.0f} s",
        "",
        "| check | value |",
        "|---|---|",
        f"| bf16 vs f32 logits, {p['size']} widths, {p['text_layers']} layers, {p['seconds']:g} s | "
        f"{p['bf16_vs_f32']:.2e} |",
        f"| attention {p['attention']['impls'][0]} vs {p['attention']['impls'][1]} (bf16 logits) | "
        f"{p['attention']['rel_err']:.2e} |",
    ]
    for key, what in (("hr_jax_f32_vs_transformers_f32", "hr_jax f32 vs transformers f32"),
                      ("transformers_bf16_vs_f32", "transformers bf16 vs transformers f32"),
                      ("hr_jax_bf16_vs_transformers_bf16", "hr_jax bf16 vs transformers bf16")):  # fmt: skip
        value = p.get(key)
        lines.append(f"| {what} | {'torch not installed' if value is None else f'{value:.2e}'} |")
    lines += ["", "Timing (`bench.run`):", "", t.get("table") or f"failed: {t.get('error')}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="qwen2.5-omni-3b", help="bench.run preset to time")
    ap.add_argument("--seconds", type=float, default=300.0, help="audio length timed")
    ap.add_argument("--parity-size", default="3B", choices=["3B", "7B", "tiny"])
    ap.add_argument("--parity-layers", type=int, default=2)
    ap.add_argument("--parity-seconds", type=float, default=30.0)
    ap.add_argument("--quick", action="store_true", help="smoke run of the timing (CPU test)")
    args = ap.parse_args(argv)

    import jax

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result: dict[str, Any] = {"backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind)}
    with tempfile.TemporaryDirectory(prefix="hr_jax_gpu_check_") as tmp:
        result["parity"] = parity(Path(tmp), args.parity_size, args.parity_layers, args.parity_seconds)
    result["timing"] = timing(args.out, args.preset, args.seconds, args.quick)
    result["wall_s"] = time.perf_counter() - start
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / "gpu_check.md").write_text(report(result))
    print(report(result))
    return 0 if "error" not in result["timing"] else 1


if __name__ == "__main__":
    sys.exit(main())
