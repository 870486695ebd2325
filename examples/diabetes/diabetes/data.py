"""scikit-learn's bundled diabetes data (no download) as the rows a snapshot captures."""

from __future__ import annotations

import numpy as np
import pandas as pd


def patients() -> pd.DataFrame:
    """442 patients: age, sex, BMI, blood pressure and six serum measurements (unscaled where
    the data ships them so), the progression one year later, and an id per patient."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.data.copy()
    frame["sex"] = np.where(frame["sex"] == 1, "female", "male")
    frame.insert(0, "patient_id", [f"P{i:03d}" for i in range(len(frame))])
    frame["progression"] = data.target.astype(float)
    return frame
