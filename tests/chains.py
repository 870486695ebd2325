"""Chain stanzas the tests share."""

from __future__ import annotations


def customers_split_by_time(rows: int) -> str:
    """Two stages, as items of a chain's ``stages:`` list: a snapshot of ``rows`` synthetic
    customers from the churn example (``churn.data:customers``, id ``customers``) and a
    split by their event time."""
    return f"""\
  - stage: snapshot
    id: customers
    plugin: python
    params: {{function: "churn.data:customers", dataset: customers, time_column: event_ts, key: [customer_id],
             kwargs: {{rows: {rows}}}}}
  - stage: split
    plugin: time
    params: {{time_column: event_ts}}
"""
