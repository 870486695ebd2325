"""The training step: ridge regression on the standardised and one-hot encoded inputs."""

from sklearn.linear_model import Ridge


def fit(features, context, params):
    """Read the training matrix the featurize stage wrote and fit on it."""
    train = context.workspace.read_frame(features.matrices["train"])
    X, y = train[list(features.feature_names)], train[features.label]
    return Ridge(alpha=params.get("alpha", 1.0)).fit(X, y)
