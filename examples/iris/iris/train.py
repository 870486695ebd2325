"""The training step: a multinomial logistic regression on the standardised measurements."""

from sklearn.linear_model import LogisticRegression


def fit(features, context, params):
    """Read the training matrix the featurize stage wrote and fit on it."""
    train = context.workspace.read_frame(features.matrices["train"])
    X, y = train[list(features.feature_names)], train[features.label]
    return LogisticRegression(C=params.get("C", 1.0), max_iter=1000).fit(X, y)
