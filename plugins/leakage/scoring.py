"""How well one column predicts the label: ROC AUC (Mann-Whitney) or R², vectorised."""

from __future__ import annotations

AUC_BLOCK = 1 << 20  # positives searched at a time


def auc_binary(x, positive) -> float:
    """ROC AUC of score ``x`` for boolean ``positive`` (ties count half); NaN rows dropped."""
    import numpy as np

    return auc_of_sorted(np.sort(x[positive]), np.sort(x[~positive]))


def auc_of_sorted(pos, neg) -> float:
    """Mann-Whitney AUC from the sorted scores of positives and negatives (NaNs sort last)."""
    import numpy as np

    def drop_nan(a):
        return a[: len(a) - int(np.isnan(a).sum())] if len(a) and np.isnan(a[-1]) else a

    pos, neg = drop_nan(pos), drop_nan(neg)
    if not len(pos) or not len(neg):
        return float("nan")
    below, ties = np.int64(0), np.int64(0)  # a block of positives at a time: no per-row arrays
    for start in range(0, len(pos), AUC_BLOCK):
        lo = np.searchsorted(neg, pos[start:start + AUC_BLOCK], "left")
        hi = np.searchsorted(neg, pos[start:start + AUC_BLOCK], "right")
        below += lo.sum()
        ties += (hi - lo).sum()
    return float((below + 0.5 * ties) / (len(pos) * len(neg)))


def best_separation(aucs) -> float:
    """The largest ``max(AUC, 1 - AUC)`` of ``aucs``, NaNs skipped (NaN if all are)."""
    import numpy as np

    best = float("nan")
    for auc in aucs:
        if not np.isnan(auc):
            best = max(auc, 1 - auc) if np.isnan(best) else max(best, auc, 1 - auc)
    return best


def label_kind(y) -> str:
    """``class`` (non-numeric, boolean or at most two values) or ``numeric``."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(y.dtype) or not pd.api.types.is_numeric_dtype(y.dtype):
        return "class"
    return "class" if y.nunique(dropna=True) <= 2 else "numeric"


def score_feature(scores, y, kind: str, classes) -> float:
    """max(AUC, 1-AUC) over classes (one-vs-rest) or R² of a linear fit."""
    import numpy as np

    if kind == "numeric":
        ok = ~np.isnan(scores)
        s, t = scores[ok], y[ok]
        if len(s) < 3 or s.std() == 0 or t.std() == 0:
            return float("nan")
        r = np.corrcoef(s, t)[0, 1]
        return float(r * r)
    return best_separation(auc_binary(scores, y == k) for k in classes)


def prepare_label(data):
    """``(kind, label values or codes, live rows, classes scored one-vs-rest)`` of ``data.label``."""
    import numpy as np
    import pandas as pd

    y = data.frame[data.label]
    kind = label_kind(y)
    live = (data.codes >= 0) & y.notna().to_numpy()
    if kind == "numeric":
        yv = y.to_numpy(dtype="float64", na_value=np.nan)
        classes = ()
    else:
        yv, uniques = pd.factorize(y, use_na_sentinel=True)
        classes = range(len(uniques)) if len(uniques) > 2 else (1,) if len(uniques) == 2 else ()
    return kind, yv, live, classes


def _encoding(codes, train, target, ncat):
    """Per category: the mean of ``target`` over the training rows (overall mean if unseen)."""
    import numpy as np

    sums = np.bincount(codes[train], weights=target[train], minlength=ncat)
    cnt = np.bincount(codes[train], minlength=ncat)
    return np.where(cnt > 0, sums / np.maximum(cnt, 1), target[train].mean())


def encoded_score(codes, held, y, kind: str, classes) -> float:
    """A category column's label mean learnt on the training rows, scored on the held-out
    rows: R² for a numeric label, else the best one-vs-rest AUC."""

    train = ~held
    ncat = int(codes.max()) + 1 if len(codes) else 0
    if kind == "numeric":
        pred, truth = _encoding(codes, train, y, ncat)[codes[held]], y[held]
        sst = ((truth - truth.mean()) ** 2).sum()
        return float(1 - ((truth - pred) ** 2).sum() / sst) if sst > 0 else float("nan")
    aucs = []
    for k in classes:
        t = (y == k).astype("float64")
        aucs.append(auc_binary(_encoding(codes, train, t, ncat)[codes[held]], t[held] > 0))
    return best_separation(aucs)
