"""One decoder layer's prefill, op by op, in JAX (XLA:CPU) and PyTorch on the same shapes.

    python -m bench.prefill_ops --preset small --seconds 30

Where a whole-prefill ratio against transformers comes from: each op (q/k/v projections as three
products and fused into one, the output projection, the SwiGLU MLP with gate/up apart and fused, causal
attention) timed alone at the real prefill length of `seconds` of audio, with its GFLOP/s. PyTorch
runs `nn.Linear` (oneDNN/MKL sgemm) and `scaled_dot_product_attention` (causal, and with an explicit
mask as transformers passes one).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from bench.presets import add_shape_options
from bench.timing import measure, write_json


def _median_ms(fn: Callable[[], object], sync: Callable[[object], object], repeats: int) -> float:
    return 1e3 * measure(lambda _: sync(fn()), repeats=repeats, warmup=1)["median_s"]


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_options(ap)
    ap.add_argument("--repeats", type=int, default=9)
    a = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import torch

    from bench import flops as F
    from bench.presets import preset_config
    from hr_jax.engine.buckets import SEQ_MULTIPLE, bucket
    from models.attention import causal_attention, resolve_attention

    t = preset_config(a.preset).text
    n = bucket(F.bench_shapes(a.seconds).seq, SEQ_MULTIPLE)  # the bucket hr_jax runs
    d, f, hq, hkv, hd = (
        t.hidden_size,
        t.intermediate_size,
        t.num_attention_heads,
        t.num_key_value_heads,
        t.head_dim,
    )
    rng = np.random.default_rng(0)
    shapes = {"q": (d, hq * hd), "k": (d, hkv * hd), "v": (d, hkv * hd), "o": (hq * hd, d), "g": (d, f),
              "u": (d, f), "dn": (f, d)}  # fmt: skip
    w = {k: (0.02 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    w["qkv"] = np.concatenate([w["q"], w["k"], w["v"]], 1)
    w["gu"] = np.concatenate([w["g"], w["u"]], 1)
    x = (0.1 * rng.standard_normal((1, n, d))).astype(np.float32)
    jw, jx = {k: jnp.asarray(v) for k, v in w.items()}, jnp.asarray(x)
    q = jnp.asarray(0.1 * rng.standard_normal((1, n, hq, hd)), jnp.float32)
    kv = jnp.asarray(0.1 * rng.standard_normal((1, n, hkv, hd)), jnp.float32)
    valid = jnp.ones((1, n), bool)

    def silu_mul(gu):
        return jax.nn.silu(gu[..., :f]) * gu[..., f:]

    jax_ops = {
        "qkv, 3 products": jax.jit(lambda x, w: (x @ w["q"], x @ w["k"], x @ w["v"])),
        "qkv, fused": jax.jit(lambda x, w: x @ w["qkv"]),
        "o": jax.jit(lambda x, w: x[..., : hq * hd] @ w["o"]),
        "mlp, gate/up apart": jax.jit(lambda x, w: (jax.nn.silu(x @ w["g"]) * (x @ w["u"])) @ w["dn"]),
        "mlp, gate/up fused": jax.jit(lambda x, w: silu_mul(x @ w["gu"]) @ w["dn"]),
    }
    lin = {k: torch.from_numpy(v) for k, v in w.items()}
    tx = torch.from_numpy(x)
    silu = torch.nn.functional.silu
    torch_ops = {
        "qkv, 3 products": lambda: (tx @ lin["q"], tx @ lin["k"], tx @ lin["v"]),
        "qkv, fused": lambda: tx @ lin["qkv"],
        "o": lambda: tx[..., : hq * hd] @ lin["o"],
        "mlp, gate/up apart": lambda: (silu(tx @ lin["g"]) * (tx @ lin["u"])) @ lin["dn"],
        "mlp, gate/up fused": lambda: (
            (lambda gu: silu(gu[..., :f]) * gu[..., f:])(tx @ lin["gu"]) @ lin["dn"]
        ),
    }
    flops = {
        "qkv, 3 products": 2 * n * d * (hq + 2 * hkv) * hd,
        "qkv, fused": 2 * n * d * (hq + 2 * hkv) * hd,
        "o": 2 * n * hq * hd * d,
        "mlp, gate/up apart": 6 * n * d * f,
        "mlp, gate/up fused": 6 * n * d * f,
        "attention (causal)": F.attention_flops(t, n, n, "causal"),
    }
    records = []
    with torch.no_grad():
        tq = torch.from_numpy(np.asarray(q)).transpose(1, 2)
        tk = torch.from_numpy(np.asarray(jnp.repeat(kv, hq // hkv, axis=2))).transpose(1, 2)
        mask = torch.ones(1, 1, n, n, dtype=torch.bool).tril()
        sdpa = torch.nn.functional.scaled_dot_product_attention
        torch_ops["attention (causal)"] = lambda: sdpa(tq, tk, tk, is_causal=True)
        impl = resolve_attention("auto", q.dtype)  # what the engine runs here
        jax_ops["attention (causal)"] = jax.jit(lambda q, kv: causal_attention(q, kv, kv, valid, impl))
        for name, fn in jax_ops.items():
            args = (q, kv) if name.startswith("attention") else (jx, jw)
            j = _median_ms(lambda fn=fn, args=args: fn(*args), jax.block_until_ready, a.repeats)
            p = _median_ms(torch_ops[name], lambda r: r, a.repeats)
            rec = {"op": name, "tokens": n, "jax_ms": j, "torch_ms": p, "flops": flops[name]}
            records.append(rec)
            print(
                f"{name:20s} n={n}  jax {j:7.2f} ms ({flops[name] / j / 1e6:6.1f} GFLOP/s)  "
                f"torch {p:7.2f} ms ({flops[name] / p / 1e6:6.1f} GFLOP/s)  jax/torch time {j / p:.2f}"
            )
        m = _median_ms(lambda: sdpa(tq, tk, tk, attn_mask=mask), lambda r: r, a.repeats)
        print(f"{'attention, torch with a mask':28s} {m:7.2f} ms (transformers' sdpa given a padding mask)")
        records.append({"op": "attention (torch, explicit mask)", "tokens": n, "torch_ms": m})
    write_json(a.json, records)
    return records


if __name__ == "__main__":
    main()
