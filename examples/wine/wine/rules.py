"""A hand-written rule to compare the model with: what a sommelier's rule of thumb says."""

import numpy as np


def by_proline_and_color(frame):
    """High proline: class_0; deep colour: class_2; else class_1 (raw snapshot columns)."""
    return np.where(frame["proline"] > 1000, "class_0",
                    np.where(frame["color_intensity"] > 4.5, "class_2", "class_1"))


def strong(frame):
    """The strong wines: alcohol of 13% or more."""
    return frame["alcohol"] >= 13.0
