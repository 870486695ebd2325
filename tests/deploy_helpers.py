"""A trained workspace for the bundle and deploy tests: two registered versions of the churn
model (``mv-churn-1``, ``mv-churn-2``) and a scoring snapshot, built once per test module
and copied for each test."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from chains import customers_split_by_time

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn"

CHAIN = """\
version: 1
name: deploytest
stages:
""" + customers_split_by_time(1500) + """\
  - stage: featurize
    params: {label: churned, numeric: [tenure_months, monthly_charges, total_charges],
             categorical: [contract, region]}
  - {step: "churn.train:fit", id: fit, params: {C: CVALUE}}
  - stage: evaluate
    plugin: classification
  - stage: register
    params: {model_name: churn}
  - stage: snapshot
    id: scoring
    plugin: python
    params: {function: "churn.data:scoring_batch", dataset: scoring, time_column: event_ts, key: [customer_id],
             kwargs: {rows: 300}}
"""


def build_project(root: Path) -> dict[str, str]:
    """Train and register two versions in ``root/.tether``; the ids of what was made."""
    from tether.config import load_chain
    from tether.manager import PluginHost
    from tether.runner import run_chain

    shutil.copytree(EXAMPLE / "churn", root / "churn")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    host = PluginHost(entry_points=False)
    ids: dict[str, str] = {}
    for i, c in enumerate(("1.0", "0.05"), 1):
        path = root / "chain.yaml"
        path.write_text(CHAIN.replace("CVALUE", c))
        run, outputs = run_chain(load_chain(path, host), host)
        assert run.status == "succeeded", run.error
        ids[f"mv{i}"] = outputs["register"].id
        ids["features"], ids["scoring"] = outputs["featurize"].id, outputs["scoring"].id
    return ids


def copy_project(source: Path, target: Path) -> Path:
    """A private copy of a built project (workspace and the example package)."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    return target
