"""A one-variable rule to compare the model with: progression grows with BMI."""


def by_bmi(frame):
    """A straight line in BMI (from the raw snapshot column), as a clinician might sketch it."""
    return 152.0 + 10.0 * (frame["bmi"] - 26.4)
