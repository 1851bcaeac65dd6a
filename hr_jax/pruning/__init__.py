"""Audio-token pruning: HeadRouter and the baselines, behind one shape-static selection step.

- `methods`: the registry of method names (HeadRouter's ablations included).
- `step`: `select_tokens`, the step prefill runs before layer M, for every method.
- `headrouter`, `baselines`, `dart`: each method's scores and choice.
- `topk`: candidates (frame pre-filter, frame stride) and the shared top-k; `slots`: where each
  row's audio and probe-text tokens sit.
- `router`: router files; `calibration`: the math that turns measurements into one
  (`hr_jax.calibrate` runs the model to measure them).
"""

from hr_jax.pruning.methods import ALL_METHODS, PRUNING_METHODS, VANILLA
from hr_jax.pruning.router import Router, RouterArrays, RouterError
from hr_jax.pruning.step import LayerView, Selection, SelectionKey, select_tokens

__all__ = [
    "ALL_METHODS",
    "PRUNING_METHODS",
    "VANILLA",
    "LayerView",
    "Router",
    "RouterArrays",
    "RouterError",
    "Selection",
    "SelectionKey",
    "select_tokens",
]
