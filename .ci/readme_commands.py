"""Prints the README's set-up commands, one per line: the bash blocks of its "## Set-up" section."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def setup_commands(readme: str) -> list[str]:
    section = re.search(r"^## Set-up[^\n]*\n(.*?)(?=^## )", readme, re.S | re.M)
    if section is None:
        raise SystemExit("README.md has no '## Set-up' section")
    blocks = re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
    return [" ".join(line.strip() for line in b.strip().splitlines()) for b in blocks]


if __name__ == "__main__":
    for command in setup_commands(Path(sys.argv[1]).read_text()):
        print(command)
