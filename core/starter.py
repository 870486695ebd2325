"""The starter project ``tether init`` writes: a chain that runs as it is, on a small
generated data set, with a training step the user replaces with their own."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

CHAIN = """\
version: 1
name: {name}
workspace: .tether
stages:
  # 1. an immutable, content-addressed version of the data
  - {{stage: snapshot, plugin: csv, params: {{path: data.csv, dataset: {name}-data, time_column: ts, key: [id]}}}}
  # 2. hold out the latest rows; the split is checked for leakage
  - {{stage: split, plugin: time, params: {{time_column: ts, entity_column: id, label: label}}}}
  # 3. the feature transform, fitted on the training rows only
  - stage: featurize
    params: {{label: label, numeric: [tenure, spend], categorical: [plan]}}
  # 4. your training code (train.py): it gets the feature set and returns a fitted model
  - {{step: "train:fit"}}
  # 5. metrics on the test rows, with a gate
  - {{stage: evaluate, plugin: classification, params: {{min: {{roc_auc: 0.6}}}}}}
  # 6. the next version of the model, if it passed
  - {{stage: register, params: {{model_name: {name}}}}}
"""

TRAIN = '''"""The training step of the starter chain: replace the model with your own."""

from sklearn.linear_model import LogisticRegression


def fit(features, context):
    """Fit on the training matrix; tether stores and versions what this returns."""
    train = context.workspace.read_frame(features.matrices["train"])
    X, y = train[list(features.feature_names)], train[features.label]
    return LogisticRegression(max_iter=1000).fit(X, y)
'''


def write_data(path: Path, rows: int = 1000, seed: int = 0) -> None:
    """A small synthetic table: a customer id, a date, two numbers, a category and a label."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "ts", "tenure", "spend", "plan", "label"])
        for i in range(rows):
            tenure, spend = rng.randint(1, 72), round(rng.uniform(10, 120), 2)
            plan = rng.choice(["monthly", "yearly", "two-year"])
            logit = 1.5 - 0.05 * tenure + 0.02 * spend + (1.0 if plan == "monthly" else -0.5)
            label = int(rng.random() < 1 / (1 + math.exp(-logit)))
            out.writerow([f"c{i:05d}", f"2026-{1 + i * 12 // rows:02d}-{1 + i % 28:02d}", tenure, spend, plan, label])


def write_starter(root: Path, name: str) -> list[Path]:
    """Write the starter files into ``root``; refuse to overwrite any of them."""
    files = {root / "chain.yaml": CHAIN.format(name=name), root / "train.py": TRAIN}
    existing = [p for p in (*files, root / "data.csv") if p.exists()]
    if existing:
        from .errors import ConfigError

        raise ConfigError(f"{existing[0]} already exists; not overwriting it (use another folder)")
    root.mkdir(parents=True, exist_ok=True)
    (root / ".tether").mkdir(exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    write_data(root / "data.csv")
    return [*files, root / "data.csv"]
