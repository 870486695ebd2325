"""The partitioned leakage checks ``entity_overlap`` and ``near_duplicates`` on a Dask
cluster; the work on each partition is the local engine's
(:mod:`tether.plugins.engines.leakage_work`), so the findings equal the local check's.

- ``entity_overlap``: the distinct ``(entity, split)`` pairs of each partition, a shuffle on
  the entity, the entities in more than one split found per shuffled partition; then the
  first rows of those entities, one task per partition.
- ``near_duplicates``: each row outside ``excluded`` emitted under its own grid key and
  under each neighbouring key it is looked up under, a shuffle on that key, the local
  near-duplicate machinery on each shuffled partition, and the verified pairs merged
  (a pair found under several keys counts once).
"""

from __future__ import annotations

from typing import Any

from tether.plugins.engines.partitions import plan


def entity_overlap(engine, path, *, split_column: str, entity_column: str, sample: int) -> Any:
    """``Engine.entity_overlap`` on ``engine``'s cluster."""
    import dask
    import dask.dataframe as dd
    from dask import delayed
    from tether.plugins.engines import leakage_work as lw

    from .errors import mapped_errors

    layout = plan(path)
    schema, parts = layout.schema, layout.partitions
    lw.require_columns(schema, {"split column": split_column, "entity column": entity_column})
    roles = {"split_column": split_column, "entity_column": entity_column}
    client = engine.client()
    with mapped_errors("entity_overlap"):
        offsets = engine.row_offsets(parts)
        meta = lw.entity_pairs_meta(schema, **roles)
        pairs = dd.from_delayed([delayed(lw.entity_pairs)(p, schema, offset=o, **roles)
                                 for p, o in zip(parts, offsets)], meta=meta, verify_meta=False)
        shuffled = pairs.shuffle(on="entity", npartitions=max(pairs.npartitions, 1))
        bad = shuffled.map_partitions(lw.shared_entities, meta=lw.shared_entities(meta))
        counts = shuffled.map_partitions(lw.entities_per_split, meta=lw.entities_per_split(meta))
        bad, counts = dask.compute(bad, counts, scheduler=client)
        rows: list = []
        if len(bad):
            wanted = client.scatter(bad["entity"], broadcast=True)
            futures = [client.submit(lw.entity_rows, p, schema, offset=o, entities=wanted, limit=sample,
                                     pure=False, **roles) for p, o in zip(parts, offsets)]
            for found in client.gather(futures):  # in row order
                rows.extend(found.tolist())
        as_float = False
        if lw.floats_when_missing(schema, entity_column):
            nulls = client.gather(client.map(lw.entity_nulls, parts, schema=schema, entity_column=entity_column,
                                             pure=False))
            as_float = any(nulls)
    return lw.shared_entities_result(bad, counts, rows[:sample], column=entity_column, sample=sample,
                                     as_float=as_float)


def near_duplicates(engine, path, *, split_column: str, ignore_columns: tuple[str, ...],
                    options: dict[str, Any]) -> Any:
    """``Engine.near_duplicates`` on ``engine``'s cluster."""
    import dask
    import dask.dataframe as dd
    from dask import delayed
    from tether.plugins.engines import leakage_work as lw
    from tether.plugins.engines.work import compared_columns
    from tether.plugins.leakage.near_duplicates import NearDuplicates

    from .errors import mapped_errors

    NearDuplicates(**options)  # the options' own validation, before anything runs
    layout = plan(path)
    schema, parts = layout.schema, layout.partitions
    compared = compared_columns(schema, split_column, tuple(ignore_columns))
    client = engine.client()
    with mapped_errors("near_duplicates"):
        offsets = engine.row_offsets(parts)
        each = {"split_column": split_column, "compared": compared, "options": options}
        rows = dd.from_delayed([delayed(lw.near_partition)(p, schema, offset=o, **each)
                                for p, o in zip(parts, offsets)],
                               meta=lw.near_meta(schema, compared=compared, options=options), verify_meta=False)
        shuffled = rows.shuffle(on=lw.KEY, npartitions=max(rows.npartitions, 1))
        found = dask.compute(*[delayed(lw.near_bucket)(bucket, compared, options)
                               for bucket in shuffled.to_delayed()], scheduler=client)
    numeric, text = lw.compared_kinds(schema, compared)
    return lw.merge_near(list(found), numeric=numeric, text=text)
