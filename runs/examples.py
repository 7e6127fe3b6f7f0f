"""The example decision run that the OpenAPI schema, docs and ``make run`` all show.

A decision of 4 options by 3 criteria costs $0.010100, well inside its $0.05 reservation.
"""

DECISION_RUN = {
    "pack_type": "decision",
    "inputs": {
        "question": "Which vendor should we pick?",
        "method": "weighted_sum",
        "criteria": [
            {"id": "cost", "weight": 0.5, "direction": "min"},
            {"id": "quality", "weight": 0.3, "direction": "max"},
            {"id": "speed", "weight": 0.2, "direction": "max"},
        ],
        "options": [
            {"id": "a", "name": "Acme", "scores": {"cost": 100, "quality": 7, "speed": 5}},
            {"id": "b", "name": "Bolt", "scores": {"cost": 80, "quality": 6, "speed": 8}},
            {"id": "c", "name": "Core", "scores": {"cost": 120, "quality": 9, "speed": 6}},
            {"id": "d", "name": "Dash", "scores": {"cost": 90, "quality": 5, "speed": 9}},
        ],
    },
    "reservation": {"max_cost_usd": "0.050000", "timebox_sec": 30},
}
