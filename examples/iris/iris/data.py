"""scikit-learn's bundled iris measurements (no download) as the rows a snapshot captures."""

from __future__ import annotations

import pandas as pd


def flowers() -> pd.DataFrame:
    """150 flowers: four measurements in cm, the species, and an id per flower."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame.insert(0, "flower_id", [f"F{i:03d}" for i in range(len(frame))])
    frame["species"] = data.target_names[data.target]
    return frame
