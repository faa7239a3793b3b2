"""The named decoding strategies (`multissl generate --strategy`): plain data, so the CLI can list them without torch."""
from __future__ import annotations

from typing import Any

# Named strategies (CLI --strategy) -> generate() keyword arguments; defaults follow the lecture advice.
STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"do_sample": False, "num_beams": 1},
    "sample": {"do_sample": True, "num_beams": 1, "top_k": 0, "top_p": 1.0},
    "top-k": {"do_sample": True, "num_beams": 1, "top_k": 40, "top_p": 1.0},
    "top-p": {"do_sample": True, "num_beams": 1, "top_k": 0, "top_p": 0.9},
    "beam": {"do_sample": False, "num_beams": 4},
}
