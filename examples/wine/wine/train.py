"""The training step: a random forest on the standardised measurements."""

from sklearn.ensemble import RandomForestClassifier


def fit(features, context, params):
    """Read the training matrix the featurize stage wrote and fit on it."""
    train = context.workspace.read_frame(features.matrices["train"])
    X, y = train[list(features.feature_names)], train[features.label]
    model = RandomForestClassifier(n_estimators=params.get("trees", 200), random_state=0)
    return model.fit(X, y)
