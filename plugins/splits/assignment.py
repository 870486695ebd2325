"""Using a stored split: its assignment, and the rows of a frame in one split."""

from __future__ import annotations

from tether.plugins.rows import row_fingerprints


def load_assignment(workspace, manifest):
    """The stored assignment (``row``, ``row_fingerprint``, ``split``) of a manifest."""
    return workspace.read_frame(manifest.assignment)


def rows_of(frame, workspace, manifest, split: str):
    """The rows of ``frame`` in ``split``, matched by row fingerprint (order-independent)."""
    import numpy as np

    assignment = load_assignment(workspace, manifest)
    wanted = assignment.loc[assignment["split"] == split, "row_fingerprint"].to_numpy(dtype=np.uint64)
    return frame[np.isin(row_fingerprints(frame), wanted)]
