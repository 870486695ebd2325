"""Evidently side of bench_drift.py; runs inside benchmarks/.venv-evidently (pandas<3).

Usage: python bench_drift_evidently.py REFERENCE.parquet CURRENT.parquet
Prints one JSON object: seconds for Report([DataDriftPreset()]).run(...) and, per column,
the method Evidently chose, its score, threshold and verdict.
"""

import json
import sys
import time

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def main(ref_path: str, cur_path: str) -> None:
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    numeric = [c for c in ref.columns if c.startswith("n")]
    categorical = [c for c in ref.columns if c.startswith("c")]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=definition),
                                               Dataset.from_pandas(ref, data_definition=definition))
    data = snapshot.dict()
    seconds = time.perf_counter() - t0
    columns = {}
    for metric in data["metrics"]:
        cfg = metric["config"]
        if cfg.get("type", "").endswith("ValueDrift"):
            method, value, threshold = cfg["method"], float(metric["value"]), float(cfg["threshold"])
            p_value_based = "p_value" in method or "test" in method.lower() and "distance" not in method.lower()
            drifted = value < threshold if p_value_based else value >= threshold
            columns[cfg["column"]] = {"method": method, "value": value, "threshold": threshold, "drifted": drifted}
    print(json.dumps({"seconds": seconds, "columns": columns}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
