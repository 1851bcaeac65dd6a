"""Parameter bytes per device under tensor parallelism, at the released widths with the depth cut.

    python -m bench.tp_memory --size 7B --text-layers 2 --audio-layers 2 \
        --json bench/results/tp_memory_7b.json

Builds the released thinker's config (`--size`), a `("data", "model")` mesh of fake CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`, set here), places random bfloat16 parameters with
`hr_jax.sharding.shard_params` at TP = 1, 2, 4, and sums the bytes each device really holds
(`addressable_shards`), against the total and against the ideal total / TP. The full-depth figure is
extrapolated per layer from the same placement. Fake devices share one CPU: they say nothing about
speed, only about where the bytes go.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bench.report import markdown_row  # noqa: E402
from hr_jax.sharding import make_mesh, param_specs, shard_params  # noqa: E402
from hr_jax.testing.checkpoints import released_config, tiny_config  # noqa: E402
from models.params import init_params  # noqa: E402
from models.qwen2_5_omni.hf_config import config_from_hf  # noqa: E402

FULL_DEPTH = {"3B": (36, 32), "7B": (28, 32)}  # (decoder layers, audio encoder layers) of the release


def _bytes_per_device(params) -> dict[int, int]:
    out: dict[int, int] = {}
    for x in jax.tree.leaves(params):
        for shard in x.addressable_shards:
            out[shard.device.id] = out.get(shard.device.id, 0) + shard.data.nbytes
    return out


def measure(size: str, text_layers: int, audio_layers: int, ways: tuple[int, ...]) -> dict:
    overrides = released_config(size, text_layers, audio_layers)
    overrides.pop("first_special_id")
    cfg = config_from_hf(tiny_config(**overrides))
    params = init_params(cfg, jax.random.key(0), jnp.bfloat16)
    total = sum(x.nbytes for x in jax.tree.leaves(params))
    layer = sum(x.nbytes for x in jax.tree.leaves(params.layers)) // text_layers
    audio_layer = sum(x.nbytes for x in jax.tree.leaves(params.audio.layers)) // audio_layers
    rows = []
    for tp in ways:
        mesh = make_mesh(model=tp, devices=jax.devices()[:tp])
        placed = shard_params(params, cfg, mesh)
        per_device = _bytes_per_device(placed)
        _, replicated = param_specs(cfg, mesh)
        dev = max(per_device.values())
        layer_dev = max(_bytes_per_device(placed.layers).values()) // text_layers
        audio_dev = max(_bytes_per_device(placed.audio.layers).values()) // audio_layers
        rest_dev = dev - layer_dev * text_layers - audio_dev * audio_layers
        rest = total - layer * text_layers - audio_layer * audio_layers
        full_layers, full_audio = FULL_DEPTH[size]
        rows.append({
            "tp": tp,
            "per_device_bytes": dev,
            "total_bytes": total,
            "ideal_per_device_bytes": total // tp,
            "over_ideal": dev / (total / tp),
            "replicated_axes": sorted(r.axis for r in replicated),
            "full_depth_per_device_bytes": rest_dev + layer_dev * full_layers + audio_dev * full_audio,
            "full_depth_total_bytes": rest + layer * full_layers + audio_layer * full_audio,
        })  # fmt: skip
        del placed
    return {"size": size, "text_layers": text_layers, "audio_layers": audio_layers, "dtype": "bfloat16",
            "rows": rows}  # fmt: skip


def markdown(result: dict) -> str:
    gb = 1e9
    lines = [
        f"Qwen2.5-Omni-{result['size']} widths, bfloat16, {result['text_layers']} decoder + "
        f"{result['audio_layers']} encoder layers placed (full depth extrapolated per layer)",
        "",
        "| TP | per device (cut) | total / TP (cut) | ratio | per device, full depth | total, full depth "
        "| replicated |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        gbs = [f"{r[k] / gb:.3f} GB" for k in ("per_device_bytes", "ideal_per_device_bytes")]
        full = [f"{r[k] / gb:.2f} GB" for k in ("full_depth_per_device_bytes", "full_depth_total_bytes")]
        lines.append(
            markdown_row(
                r["tp"], *gbs, f"{r['over_ideal']:.3f}", *full, ", ".join(r["replicated_axes"]) or "-"
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="7B", choices=sorted(FULL_DEPTH))
    ap.add_argument("--text-layers", type=int, default=2)
    ap.add_argument("--audio-layers", type=int, default=2)
    ap.add_argument("--ways", default="1,2,4")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    ways = tuple(int(w) for w in args.ways.split(","))
    result = measure(args.size, args.text_layers, args.audio_layers, ways)
    print(markdown(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
