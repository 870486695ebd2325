"""Bundles: skops round trip with the recorded trusted types, nothing deserialized before the
record and the bytes are verified, and input rows checked against the schema."""

from __future__ import annotations

import math
import pickle

import attrs
import numpy as np
import pandas as pd
import pytest
from deploy_helpers import build_project, copy_project
from tether.errors import DataError, IntegrityError, SchemaError, TetherError
from tether.workspace import Workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles-project")
    return root, build_project(root)


@pytest.fixture
def ws(built, tmp_path, host):
    root, _ids = built
    project = copy_project(root, tmp_path / "project")
    with Workspace.open(host, project / ".tether") as workspace:
        yield workspace


@pytest.fixture
def ids(built):
    return built[1]


def _row(**changes):
    row = {"tenure_months": 12, "monthly_charges": 70.5, "total_charges": 800.0, "contract": "one-year",
           "region": "north"}
    row.update(changes)
    return row


def _refuse(monkeypatch):
    """Make any deserialization fail the test."""
    import skops.io

    def boom(*args, **kwargs):
        raise AssertionError("deserialized before verification")

    monkeypatch.setattr(skops.io, "loads", boom)
    monkeypatch.setattr(pickle, "loads", boom)


# --- building and the skops round trip ---------------------------------------------------------


def test_a_bundle_round_trips_through_skops_and_predicts_like_the_registered_model(ws, ids):
    from tether.plugins.bundles import build_bundle, load_bundle

    record = build_bundle(ws, "churn@1")
    assert record.model_version_id == ids["mv1"] and record.id.startswith("bundle-")
    assert {a.role: a.format for a in record.artifacts} == {"model": "skops", "transform": "skops"}
    assert record.artifact("transform").trusted == ("numpy.dtype",)  # exactly what the file needs beyond defaults
    assert record.requirements["scikit-learn"] and record.requirements["skops"]
    assert record.card["name"] == "churn" and record.card["version"] == 1 and "evaluation" in record.card
    assert build_bundle(ws, ids["mv1"]).id == record.id  # built once per version

    bundle = load_bundle(ws, "churn@1")
    frame = ws.read_snapshot(ws.store.get(ids["scoring"], kind="snapshot"))
    got = bundle.predict(frame)
    features = ws.store.get(ids["features"], kind="features")
    model = ws.load_model(ws.store.get(ws.store.get(ids["mv1"]).model_id, kind="model"))
    transform = ws.load_transform(features)
    X = pd.DataFrame(transform.transform(frame[list(features.input_columns)]), columns=list(features.feature_names))
    np.testing.assert_allclose(got["score"].to_numpy(), model.predict_proba(X)[:, 1])
    np.testing.assert_array_equal(got["prediction"].to_numpy(), model.predict(X))
    assert bundle.schema["outputs"] == [{"name": "prediction", "type": "integer"}, {"name": "score", "type": "number"}]


def test_lineage_links_the_bundle_to_its_model_version(ws, ids):
    from tether.plugins.bundles import build_bundle

    record = build_bundle(ws, "churn@2")
    parents = {(e["parent"], e["relation"]) for e in ws.store.lineage(record.id)["upstream"] if e["depth"] == 1}
    assert (ids["mv2"], "model_version") in parents and (ids["features"], "features") in parents


def test_the_schema_records_types_and_the_categories_seen_in_training(ws):
    from tether.plugins.bundles import build_bundle

    inputs = {f["name"]: f for f in build_bundle(ws, "churn@1").schema["inputs"]}
    assert [inputs[n]["type"] for n in ("tenure_months", "monthly_charges", "contract")] == \
        ["integer", "number", "string"]
    assert inputs["contract"]["categories"] == ["month-to-month", "one-year", "two-year"]
    assert inputs["contract"]["fallback"] == "month-to-month"  # the most frequent in training
    assert inputs["tenure_months"]["categories"] is None


# --- verification before anything is deserialized ----------------------------------------------


def test_an_altered_bundle_record_is_refused_before_anything_is_deserialized(ws, monkeypatch):
    from tether.plugins.bundles import build_bundle, load_bundle

    record = build_bundle(ws, "churn@1")
    model = record.artifact("model")
    widened = attrs.evolve(model, trusted=("builtins.eval",))
    ws.store.put(attrs.evolve(record, artifacts=(widened, record.artifact("transform"))), replace=True)
    _refuse(monkeypatch)
    with pytest.raises(IntegrityError, match=r"does not match its recorded hash: the record was altered"):
        load_bundle(ws, record.id)


def test_a_pickled_artifact_whose_bytes_changed_is_refused_before_unpickling(ws, monkeypatch):
    from tether.plugins.bundles import artifacts, build_bundle, load_bundle

    monkeypatch.setattr(artifacts, "_skops_bytes", lambda obj: None)  # as if skops could not write it
    record = build_bundle(ws, "churn@2")
    assert {a.format for a in record.artifacts} == {"pickle"}
    path = ws.storage.local_path(record.artifact("model").ref)
    path.chmod(0o644)
    path.write_bytes(pickle.dumps({"not": "the model"}))
    _refuse(monkeypatch)
    with pytest.raises(IntegrityError):
        load_bundle(ws, "churn@2")


def test_a_pickled_bundle_loads_after_verification(ws, monkeypatch):
    from tether.plugins.bundles import artifacts, build_bundle, load_bundle

    monkeypatch.setattr(artifacts, "_skops_bytes", lambda obj: None)
    build_bundle(ws, "churn@2")
    monkeypatch.undo()
    assert load_bundle(ws, "churn@2").predict([_row()])["prediction"].tolist()[0] in (0, 1)


def test_a_skops_file_holding_a_type_the_bundle_did_not_record_is_refused(ws):
    from sklearn.preprocessing import FunctionTransformer
    from tether.plugins.bundles import artifacts, build_bundle, load_bundle
    from tether.plugins.bundles.record import seal

    record = build_bundle(ws, "churn@1")
    other = artifacts.save(ws, FunctionTransformer(math.sqrt), role="transform")
    assert other.trusted == ("math.sqrt",)  # not trusted by skops by default
    forged = seal(attrs.evolve(record, artifacts=(record.artifact("model"), attrs.evolve(other, trusted=()))))
    ws.store.put(forged)
    with pytest.raises(IntegrityError, match=r"holds types the bundle did not record as trusted: math.sqrt"):
        load_bundle(ws, forged.id)


def test_an_unknown_bundle_or_version_is_a_clear_error(ws):
    from tether.errors import NotFoundError
    from tether.plugins.bundles import load_bundle

    with pytest.raises(NotFoundError, match="no bundle 'bundle-0000'"):
        load_bundle(ws, "bundle-0000")
    with pytest.raises(NotFoundError):
        load_bundle(ws, "churn@9")
    with pytest.raises(NotFoundError, match="has no bundle yet"):
        load_bundle(ws, "churn@1", build=False)


# --- validating rows against the schema ---------------------------------------------------------


@pytest.fixture
def bundle(ws):
    from tether.plugins.bundles import load_bundle

    return load_bundle(ws, "churn@1")


def test_a_missing_feature_names_the_field(bundle):
    row = _row()
    del row["monthly_charges"]
    with pytest.raises(SchemaError, match=r"missing field 'monthly_charges'") as info:
        bundle.predict([row])
    assert info.value.field == "monthly_charges"
    assert isinstance(info.value, DataError) and isinstance(info.value, TetherError)


def test_a_value_of_the_wrong_type_names_the_field_and_the_row(bundle):
    with pytest.raises(SchemaError, match=r"field 'tenure_months': expected a number, got str 'twelve' \(row 1\)") \
            as info:
        bundle.validate([_row(), _row(tenure_months="twelve")])
    assert info.value.field == "tenure_months"
    with pytest.raises(SchemaError, match=r"field 'contract': expected a string, got int 3") as info:
        bundle.validate([_row(contract=3)])
    assert info.value.field == "contract"
    with pytest.raises(SchemaError, match=r"field 'tenure_months': expected a number, got bool"):
        bundle.validate(_row(tenure_months=True))


def test_an_unseen_category_follows_the_policy(bundle):
    rows = [_row(), _row(contract="three-year")]
    with pytest.raises(SchemaError, match=r"field 'contract': category 'three-year' \(row 1\) was not seen in "
                                          r"training") as info:
        bundle.predict(rows)
    assert info.value.field == "contract"
    ignored = bundle.validate(rows, unseen="ignore")
    assert ignored["contract"].tolist() == ["one-year", "three-year"]
    assert len(bundle.predict(rows, unseen="ignore")) == 2
    replaced = bundle.validate(rows, unseen="fallback")
    assert replaced["contract"].tolist() == ["one-year", "month-to-month"]
    expected = bundle.predict([_row(), _row(contract="month-to-month")])
    pd.testing.assert_frame_equal(bundle.predict(rows, unseen="fallback"), expected)


def test_missing_values_pass_and_extra_fields_are_ignored(bundle):
    frame = bundle.validate([_row(total_charges=None, extra="x"), _row(region=None)])
    assert list(frame.columns) == bundle.input_names
    assert frame["total_charges"].isna().tolist() == [True, False]
    assert len(bundle.predict([_row(total_charges=None)])) == 1


def test_malformed_rows_are_schema_errors(bundle):
    with pytest.raises(SchemaError, match="no rows to score"):
        bundle.validate([])
    with pytest.raises(SchemaError, match=r"row 1: expected a mapping"):
        bundle.validate([_row(), ["not", "a", "row"]])
    with pytest.raises(SchemaError, match="expected a row"):
        bundle.validate("tenure_months=3")
    with pytest.raises(TetherError, match="must be one of error, ignore, fallback"):
        bundle.validate([_row()], unseen="drop")
