"""scikit-learn's bundled wine analyses (no download) as the rows a snapshot captures."""

from __future__ import annotations

import pandas as pd


def wines() -> pd.DataFrame:
    """178 wines: 13 measurements, the cultivar (class_0..class_2) and an id per wine."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace("/", "_"))
    frame.insert(0, "wine_id", [f"W{i:03d}" for i in range(len(frame))])
    frame["cultivar"] = data.target_names[data.target]
    return frame
