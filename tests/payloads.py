"""Request bodies for the runs API."""

from typing import Any


def decision_inputs(n_options: int = 4, n_criteria: int = 3, method: str = "weighted_sum") -> dict:
    criteria = [
        {"id": f"c{j}", "weight": j + 1, "direction": "max" if j % 2 == 0 else "min"}
        for j in range(n_criteria)
    ]
    options = [
        {
            "id": f"o{i}",
            "name": f"Option {i}",
            "scores": {f"c{j}": (i * 7 + j * 3) % 11 + i for j in range(n_criteria)},
        }
        for i in range(n_options)
    ]
    return {"question": "Which option?", "method": method, "criteria": criteria, "options": options}


def run_body(max_cost_usd: str = "0.050000", **overrides: Any) -> dict:
    body: dict[str, Any] = {
        "pack_type": "decision",
        "inputs": decision_inputs(),
        "reservation": {"max_cost_usd": max_cost_usd, "timebox_sec": 30},
    }
    body.update(overrides)
    return body
