"""Where a run starts (`--init-from`) and what a passed gate leaves in the repository (`--milestone`).

A run starts from one of:
- a converted checkpoint (`hr_jax_config.json`, e.g. the shipped model): its model, fresh heads;
- another run's directory (`train_config.json`): its latest model and heads;
- a milestone directory (`milestone.json`): the base checkpoint it names, with the leaves the
  milestone's stage trained (`trained.npz`) put back, heads included.

A milestone is what a session commits when a stage passes its gate: the leaves that stage trained
(float32; training stage "encoder" leaves the decoder as it found it, so a milestone of it is the
encoder, its projection and the heads, ~3 MB instead of the whole model), the run's config, log,
loss plot, held-out scores and tokenizer. A session on a fresh machine resumes from it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hr_jax.training.config import TrainConfig
from hr_jax.training.state import MILESTONE_FILE, TRAINED_FILE, named_leaves, param_groups, restore_latest

RUN_FILES = ("train_config.json", "train_log.jsonl", "loss.png")


def _trained_groups(tcfg: TrainConfig) -> tuple[str, ...]:
    groups = ("encoder", "projection", "decoder", "heads")
    if tcfg.stage == "encoder":
        return tuple(g for g in groups if g != "decoder")
    return groups if tcfg.encoder_lr_scale else groups[1:]


def write_milestone(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, base: str, heldout: dict[str, Any] | None = None
) -> Path:
    """Writes the milestone of run `run_dir` (its latest checkpoint, which started from `base`: a
    converted checkpoint, a run directory or another milestone)."""
    run, out = Path(run_dir), Path(out_dir)
    tcfg = TrainConfig.from_json(json.loads((run / "train_config.json").read_text()))
    step, _, params, _ = restore_latest(run, tcfg)
    if not step:
        raise FileNotFoundError(f"no checkpoint under {run / 'ckpt'}")
    groups = _trained_groups(tcfg)
    names, leaves = named_leaves(param_groups(params)), named_leaves(params)
    keep = {k: np.asarray(v, np.float32) for k, v in leaves.items() if names[k] in groups}
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.savez(tmp / TRAINED_FILE, **keep)
    for f in RUN_FILES:
        if (run / f).exists():
            shutil.copy(run / f, tmp / f)
    shutil.copytree(run / "tokenizer", tmp / "tokenizer")
    # the base is recorded relative to the milestone, so a committed milestone resolves from any cwd
    rel_base = os.path.relpath(Path(base).absolute(), out.absolute())
    meta = {"stage": tcfg.stage, "step": step, "base": rel_base, "groups": list(groups), "heldout": heldout}
    (tmp / MILESTONE_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
