"""What a GPU image lacks of hr_jax's runtime requirements, and pins that keep its JAX.

The lent GPU's image already has JAX with CUDA, flax, orbax, transformers and torch. `bench/gpu_check.sh`
installs hr_jax there with `--no-deps`, then only the requirements that are missing (the small audio and
metric packages), under constraints pinning the JAX, jaxlib, CUDA plugins and torch already installed, so
pip can never bring in a second JAX.

    python -m bench.gpu_env missing       # missing runtime requirements, one per line
    python -m bench.gpu_env constraints   # pins of what must not change, one per line
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys

# Distributions whose installed versions the image's accelerator stack depends on.
KEEP = re.compile(r"^(jax|jaxlib|jax-cuda\d+-(plugin|pjrt)|libtpu|torch|nvidia-.*)$")


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;(]", requirement.strip(), maxsplit=1)[0]


def runtime_requirements() -> list[str]:
    """hr_jax's runtime requirements (no extras), from the installed package's metadata (present after
    `pip install --no-deps -e .`)."""
    return [r.split(";")[0].strip() for r in md.requires("hr_jax") or [] if "extra ==" not in r]


def missing_requirements() -> list[str]:
    """The runtime requirements with no installed distribution (version ranges are not re-checked: the
    image's packages are taken as they are)."""
    out = []
    for req in runtime_requirements():
        try:
            md.version(_name(req))
        except md.PackageNotFoundError:
            out.append(req)
    return out


def constraints() -> list[str]:
    """`name==version` of every installed distribution of the accelerator stack (`KEEP`)."""
    pins = {}
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if KEEP.match(name):
            pins[name] = dist.version
    return [f"{n}=={v}" for n, v in sorted(pins.items())]


def main(argv: list[str]) -> int:
    if argv not in (["missing"], ["constraints"]):
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(missing_requirements() if argv == ["missing"] else constraints()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
