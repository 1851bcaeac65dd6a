"""Peak memory of checkpoint conversion and loading, against the parameter bytes.

    python -m bench.convert_memory [--size 3B] [--text-layers 2] [--audio-layers 2] [--dtype float32]
                                   [--json FILE]

Builds a random Hugging Face thinker at the released widths with its depth cut (written by transformers'
`save_pretrained`), then runs, each in a fresh process so that its peak resident set is its own:
the converter (`python -m convert.hf_to_jax`) and `hr_jax.load`. The same two steps on the tiny model
give the fixed overhead (interpreter, JAX, orbax, transformers); the table reports
`(peak - overhead) / parameter bytes`, the number that grows with the model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_LOAD = (
    "import sys, jax, hr_jax; m = hr_jax.load(sys.argv[1]); "
    "print(sum(x.nbytes for x in jax.tree.leaves(m.params)))"
)


def _peak_rss(cmd: list[str]) -> tuple[int, str]:
    """(peak RSS in bytes, stdout) of `cmd`, from its own rusage (`os.wait4`)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "JAX_PLATFORMS": "cpu"})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}")
        return usage.ru_maxrss * 1024, out.read()


def _build(out: Path, overrides: dict[str, Any] | None) -> Path:
    code = (
        "import json, sys; from hr_jax.testing.checkpoints import build_tiny_checkpoint; "
        "build_tiny_checkpoint(sys.argv[1], config_overrides=json.loads(sys.argv[2]), "
        "writer='save_pretrained')"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(out), json.dumps(overrides)], check=True, capture_output=True
    )
    return out


def measure(hf_dir: Path, work: Path, dtype: str) -> dict[str, Any]:
    out = work / f"jax_{hf_dir.name}"
    conv_peak, _ = _peak_rss([sys.executable, "-m", "convert.hf_to_jax", "--hf-dir", str(hf_dir), "--out",
                              str(out), "--dtype", dtype])  # fmt: skip
    load_peak, stdout = _peak_rss([sys.executable, "-c", _LOAD, str(out)])
    return {
        "param_bytes": int(stdout.strip().splitlines()[-1]),
        "convert_peak": conv_peak,
        "load_peak": load_peak,
    }


def main(argv: list[str] | None = None) -> int:
    from hr_jax.testing.checkpoints import released_config

    p = argparse.ArgumentParser(prog="python -m bench.convert_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="3B", choices=["3B", "7B"])
    p.add_argument("--text-layers", type=int, default=2)
    p.add_argument("--audio-layers", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hr_jax_convmem_") as tmp:
        work = Path(tmp)
        # Built in child processes: a child's peak RSS counts the parent it was forked from.
        tiny = _build(work / "tiny", None)
        big = _build(work / "released", released_config(args.size, args.text_layers, args.audio_layers))
        overhead = measure(tiny, work, args.dtype)
        result = measure(big, work, args.dtype)
    fixed = {k: overhead[k] for k in ("convert_peak", "load_peak")}
    n = result["param_bytes"]
    report = {
        "machine": platform.processor() or platform.machine(),
        "config": {
            "size": args.size,
            "text_layers": args.text_layers,
            "audio_layers": args.audio_layers,
            "dtype": args.dtype,
        },  # fmt: skip
        "param_bytes": n,
        "fixed_overhead": fixed,
        "convert_peak": result["convert_peak"],
        "load_peak": result["load_peak"],
        "convert_ratio": (result["convert_peak"] - fixed["convert_peak"]) / n,
        "load_ratio": (result["load_peak"] - fixed["load_peak"]) / n,
    }
    gb = 1 << 30
    print(f"{args.size} widths, {args.text_layers} text + {args.audio_layers} audio layers, {args.dtype}: "
          f"{n / gb:.2f} GiB of parameters")  # fmt: skip
    print("| step    | peak RSS | fixed overhead | (peak - overhead) / params |")
    print("|---------|----------|----------------|----------------------------|")
    for step in ("convert", "load"):
        peak, base, ratio = report[f"{step}_peak"] / gb, fixed[f"{step}_peak"] / gb, report[f"{step}_ratio"]
        print(f"| {step:7s} | {peak:6.2f} GiB | {base:10.2f} GiB | {ratio:26.2f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
