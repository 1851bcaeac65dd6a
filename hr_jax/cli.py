"""`hr-jax` command line: demo, generate, calibrate, eval, report, serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def generate_main(argv: Sequence[str] | None = None) -> int:
    import hr_jax
    from hr_jax.cli_options import NO_TRUNCATION_HELP, add_model_options, load_model
    from hr_jax.pruning.methods import ALL_METHODS

    ap = argparse.ArgumentParser(prog="hr-jax generate", description="Generate text from audio.")
    add_model_options(ap)
    ap.add_argument("--audio", required=True, nargs="+", help="audio file(s)")
    ap.add_argument("--prompt", default="Describe the audio.")
    ap.add_argument("--ratio", type=float, default=0.0, help="share of audio tokens to prune, in [0, 1)")
    ap.add_argument("--method", default="headrouter", choices=ALL_METHODS)
    ap.add_argument("--router", default=None, help="router JSON from `hr-jax calibrate`")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-truncation", action="store_true", help=NO_TRUNCATION_HELP)
    args = ap.parse_args(argv)
    model = load_model(args)
    batch = hr_jax.make_batch(model, args.audio, args.prompt, truncation=not args.no_truncation)
    out = hr_jax.generate_batch(
        model, batch, args.ratio, method=args.method, router=args.router, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, top_p=args.top_p, seed=args.seed,
    )  # fmt: skip
    for path, text, na, kept in zip(args.audio, out.texts, out.num_audio, out.kept_audio, strict=True):
        print(f"{path}\t[{kept}/{na} audio tokens]\t{text}")
    return 0


COMMANDS = {
    "demo": ("hr_jax.demo", "demo_main"),
    "generate": ("hr_jax.cli", "generate_main"),
    "calibrate": ("hr_jax.calibrate", "calibrate_main"),
    "eval": ("hr_jax.eval.cli", "eval_main"),
    "report": ("hr_jax.eval.cli", "report_main"),
    "serve": ("hr_jax.serving.server", "serve_main"),
}


def main(argv: Sequence[str] | None = None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: hr-jax {" + ",".join(COMMANDS) + "} [options]   (hr-jax COMMAND --help for details)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func = COMMANDS[argv[0]]
    from hr_jax.compilation_cache import enable_compilation_cache

    enable_compilation_cache()  # a second run over the same shapes compiles nothing
    try:
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointNotFound is a FileNotFoundError
        print(f"hr-jax {argv[0]}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
