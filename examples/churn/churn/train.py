"""The user's own training step: tether hands it the feature set, it returns a fitted model."""

from sklearn.linear_model import LogisticRegression


def fit(features, context, params):
    """Fit a logistic regression on the training matrix (transform already fitted on train only)."""
    train = context.workspace.read_frame(features.matrices["train"])
    X, y = train[list(features.feature_names)], train[features.label]
    model = LogisticRegression(C=params.get("C", 1.0), max_iter=1000)
    return model.fit(X, y)
