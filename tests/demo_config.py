"""The demo experiment's path and raw YAML values, so tests follow the demo when it is retuned."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments" / "demo.yaml"


def demo_train(*keys: str):
    """A value from the raw demo YAML's `train` section (``demo_train("schedule", "steps")``)."""
    import yaml

    node = yaml.safe_load(DEMO.read_text())["train"]
    for k in keys:
        node = node[k]
    return node
