"""The vectorised machinery of ``near_duplicates``: grid keys, neighbour lookups, and the
join of lookups against keys with exact verification of the candidate pairs.

Memory is bounded: per-row work runs over blocks of :data:`BLOCK` rows, the join over
blocks of lookups and of candidate pairs, and the values a pair is verified with are read
from the frame for the candidates only (never a copy of every compared column).
"""

from __future__ import annotations

BLOCK = 1 << 20  # rows (or lookups) per block
PAIR_BLOCK = 1 << 22  # candidate pairs verified at once
GRID_OFFSET = 0.318309886  # shifts the cell edges off round values


def mix(h, j: int):
    """Hash ``h`` (uint64) salted with column position ``j``."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = (h + np.uint64(j + 1) * np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        return x ^ (x >> np.uint64(31))


def column_values(column, index):
    """float64 values of a numeric column at positions ``index``, missing values as NaN."""
    import numpy as np

    if isinstance(column.dtype, np.dtype):
        return column.to_numpy()[index].astype("float64", copy=False)
    return column.iloc[index].to_numpy(dtype="float64", na_value=np.nan)


def grid_cells(x, *, atol: float, tolerance: float, width: float, step: float):
    """Per value: its cell (int64; negative codes for NaN, infinities and, with ``atol`` 0,
    zero), and whether it is within ``step`` of the cell's lower and of its upper edge.

    The grid runs over ``sign(x) * log1p(|x| * tolerance / atol)``, or over ``log |x|``
    with the sign as the cell's lowest bit when ``atol`` is 0.
    """
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pos = np.abs(x)
        if atol > 0:
            pos *= tolerance / atol
            np.log1p(pos, out=pos)
            pos *= np.sign(x)
        else:
            np.log(pos, out=pos)
        pos += GRID_OFFSET
        pos /= width
    finite = np.isfinite(pos)
    pos[~finite] = 0.0
    cell = np.floor(pos)
    pos -= cell
    pos *= width  # distance from the cell's lower edge
    near_lo, near_hi = finite & (pos <= step), finite & (width - pos <= step)
    cells = cell.astype(np.int64)
    if atol == 0:
        cells *= 2
        cells += x < 0
    odd = np.flatnonzero(~finite)
    if len(odd):
        v = x[odd]
        cells[odd] = np.where(np.isnan(v), -3, np.where(v == 0, -2, np.where(v > 0, -4, -5)))
    return cells, near_lo, near_hi


def neighbour(cells, shift: int, atol: float):
    """The cell next to ``cells`` on side ``shift``."""
    return cells + (shift if atol > 0 else 2 * shift)


def expansions(key, deltas, max_expand: int):
    """Extra lookups ``(rows, keys)``: every row near a cell edge under its neighbouring key,
    and under every combination of its neighbouring keys (rows with more than ``max_expand``
    such values are looked up under their own key only). The order is that of expanding the
    list of lookups (own keys of rows 0..n-1 first) by each delta in turn."""
    import numpy as np

    n_near = np.zeros(len(key), dtype=np.int32)
    for at, _ in deltas:
        n_near[at] += 1
    rows = np.zeros(0, dtype=np.int64)
    keys = np.zeros(0, dtype=np.uint64)
    for at, delta in deltas:
        ok = n_near[at] <= max_expand
        at, delta = at[ok], delta[ok]
        if not len(at):
            continue
        new_rows, new_keys = [at], [key[at] ^ delta]
        if len(rows):
            pos = np.searchsorted(at, rows).clip(0, len(at) - 1)
            hit = at[pos] == rows
            new_rows.append(rows[hit])
            new_keys.append(keys[hit] ^ delta[pos[hit]])
        rows = np.concatenate([rows, *new_rows])
        keys = np.concatenate([keys, *new_keys])
    return rows, keys


def lookup_blocks(key, extra_rows, extra_keys):
    """``(rows, keys, own)`` blocks of the lookups: every row under its own key, then the extras."""
    import numpy as np

    for start in range(0, len(key), BLOCK):
        stop = min(start + BLOCK, len(key))
        yield np.arange(start, stop), key[start:stop], True
    for start in range(0, len(extra_rows), BLOCK):
        yield extra_rows[start:start + BLOCK], extra_keys[start:start + BLOCK], False


def candidate_blocks(key, blocks, max_pairs: int, state: dict):
    """Candidate pairs ``(a, b)`` in blocks: lookup row ``a`` and row ``b`` whose key matches.

    At most ``max_pairs`` candidates besides each row with itself; the lookups beyond are
    dropped and ``state["truncated"]`` is set."""
    import numpy as np

    order = np.argsort(key, kind="stable")
    if len(order) < 2**31 - 1:
        order = order.astype(np.int32)  # held through the join: half the memory
    ordered = key[order]
    done, truncated = 0, False
    state["truncated"] = False
    for q_rows, q_keys, own in blocks:
        lo = np.searchsorted(ordered, q_keys, "left")
        counts = np.searchsorted(ordered, q_keys, "right") - lo
        total = np.cumsum(counts - 1 if own else counts) + done
        if len(total) and total[-1] > max_pairs:
            truncated = True
            keep = total <= max_pairs
            q_rows, lo, counts, total = q_rows[keep], lo[keep], counts[keep], total[keep]
        done = int(total[-1]) if len(total) else done
        ends = np.cumsum(counts)
        cuts = np.searchsorted(ends, np.arange(PAIR_BLOCK, int(ends[-1]) if len(ends) else 0, PAIR_BLOCK), "right")
        for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(counts)]):
            c = counts[s:e]
            offsets = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
            yield np.repeat(q_rows[s:e], c), order[np.repeat(lo[s:e], c) + offsets]
        if truncated:
            break
    state["truncated"] = truncated
