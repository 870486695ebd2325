"""A writer killed at any point leaves no visible snapshot and nothing `verify` misreports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, pandas as pd
    from tether.plugins.snapshots import conform, writer
    from tether.plugins.snapshots.create import create_snapshot

    workspace, phase = sys.argv[1], sys.argv[2]
    writer.PART_BYTES = 8 << 20      # several parts, so a kill can fall between them
    conform.PIECE_ROWS = 100_000
    rng = np.random.default_rng(1)
    n = 3_000_000
    frame = pd.DataFrame({f"c{i}": rng.normal(size=n) for i in range(6)})
    frame["k"] = np.arange(n)

    if phase == "after-objects":
        # die after every object is committed but before the record is written
        from tether.plugins.local_storage import storage as local_storage
        original = local_storage.LocalStorage.put_file
        calls = []
        def put_file(self, *a, **kw):
            ref = original(self, *a, **kw)
            calls.append(ref)
            return ref
        local_storage.LocalStorage.put_file = put_file
        from tether.plugins.sqlite_store import store as sqlite_store
        def die(*a, **kw):
            print("objects committed", len(calls), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        sqlite_store.SQLiteStore.put_versioned = die
    print("writing", flush=True)
    snap = create_snapshot(frame, name="big", workspace=workspace)
    print("done", snap.id, flush=True)
""")


def start_writer(tmp_path, phase: str) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "ws"), phase], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, marker: str) -> None:
    line = proc.stdout.readline()
    assert line.startswith(marker), (line, proc.stderr.read() if proc.poll() is not None else "")


def check_after_kill(tmp_path, tether_cli, *, expect_leftovers: bool | None) -> None:
    ws = str(tmp_path / "ws")
    listing = tether_cli("snapshots", "ls", "--json", "-w", ws)
    assert listing.exit_code == 0, listing
    assert json.loads(listing.stdout) == []  # nothing visible
    verify = tether_cli("verify", "--json", "-w", ws)
    assert verify.exit_code == 0, verify  # leftovers are not reported as damage
    report = json.loads(verify.stdout)
    assert report["ok"] and report["changed"] == [] and report["missing"] == []
    if expect_leftovers:
        assert report["unreferenced"] or report["temp"]
    # a re-run succeeds and is complete
    rerun = tether_cli("snapshots", "create", str(tmp_path / "frame.parquet"), "--name", "big", "-w", ws)
    assert rerun.exit_code == 0, rerun
    snap_id = rerun.stdout.strip()
    got = tether_cli("snapshots", "get", snap_id, "-o", str(tmp_path / "back.parquet"), "-w", ws)
    assert got.exit_code == 0, got
    # garbage collection removes what the killed writer left, and only that
    gc = tether_cli("verify", "--gc", "--grace", "0", "--json", "-w", ws)
    assert gc.exit_code == 0, gc
    after = json.loads(tether_cli("verify", "--json", "-w", ws).stdout)
    assert after["ok"] and after["unreferenced"] == [] and after["temp"] == []
    assert tether_cli("snapshots", "get", snap_id, "-o", str(tmp_path / "again.parquet"), "-w", ws).exit_code == 0


def write_frame(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    pd.DataFrame({"a": rng.normal(size=20_000), "k": np.arange(20_000)}).to_parquet(tmp_path / "frame.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.1, 0.5])
def test_sigkill_mid_write_leaves_nothing_visible(tmp_path, tether_cli, delay):
    write_frame(tmp_path)
    proc = start_writer(tmp_path, "mid-write")
    try:
        wait_for(proc, "writing")
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 0:
        pytest.fail("the writer finished before it was killed; make the frame larger")
    assert proc.returncode == -signal.SIGKILL
    check_after_kill(tmp_path, tether_cli, expect_leftovers=None)


@pytest.mark.slow
def test_sigkill_between_objects_and_record(tmp_path, tether_cli):
    write_frame(tmp_path)
    proc = start_writer(tmp_path, "after-objects")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert "objects committed" in out and int(out.split("objects committed")[1].split()[0]) > 1
    check_after_kill(tmp_path, tether_cli, expect_leftovers=True)


MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys
    import pyarrow, pyarrow.parquet, pyarrow.dataset, pandas, numpy, xxhash, blake3
    from tether.plugins.snapshots import conform
    from tether.plugins.snapshots.create import create_snapshot
    from tether.workspace import Workspace
    from tether.manager import PluginHost

    folder, ws_path, headroom = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conform.PIECE_BYTES = 32 << 20
    ws = Workspace.open(PluginHost(entry_points=False), ws_path)
    vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
    if sys.argv[4] == "whole":
        try:
            pyarrow.dataset.dataset(folder, format="parquet", partitioning="hive").to_table()
            print(json.dumps({"loaded": True}))
        except Exception as exc:  # ArrowMemoryError, or a worker thread that cannot start
            print(json.dumps({"loaded": False, "error": type(exc).__name__}))
        sys.exit(0)
    snap = create_snapshot(folder, name="folder", workspace=ws)
    print(json.dumps({"rows": snap.num_rows, "fingerprint": snap.fingerprint}))
""")


@pytest.mark.slow
def test_parquet_folder_three_times_the_memory_cap_is_snapshotted_streaming(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    headroom = 320 << 20
    folder, total, rows = tmp_path / "folder", 0, 0
    rng = np.random.default_rng(0)
    i = 0
    while total < 3 * headroom:
        n = 1_000_000
        table = pa.table({"id": np.arange(rows, rows + n), "a": rng.random(n), "b": rng.random(n),
                          "c": rng.integers(0, 1 << 40, n), "d": rng.random(n), "e": rng.random(n)})
        (folder / f"day={i:02d}").mkdir(parents=True)
        pq.write_table(table, folder / f"day={i:02d}" / "part.parquet", compression="snappy", row_group_size=250_000)
        total, rows, i = total + table.nbytes, rows + n, i + 1
    # the system allocator returns freed memory (mimalloc reserves ~1 GiB of address space up front)
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "2",
           "MALLOC_MMAP_THRESHOLD_": "131072", "OPENBLAS_NUM_THREADS": "1"}

    def child(mode):
        proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(folder), str(tmp_path / "ws"), str(headroom),
                               mode], capture_output=True, text=True, env=env, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert child("whole")["loaded"] is False  # the cap really binds: loading it whole fails
    result = child("snapshot")
    assert result["rows"] == rows
    import pyarrow.dataset as ds
    from tether.plugins.snapshots.fingerprint import fingerprint_table

    whole = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    assert result["fingerprint"] == fingerprint_table(whole.sort_by([("id", "ascending")]))


@pytest.mark.slow
def test_a_parquet_file_with_one_row_group_larger_than_the_cap_is_streamed(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    headroom = 200 << 20
    n = 6_000_000  # 6 columns x 8 bytes x 6M rows = 275 MiB in one row group (pre-buffering held it whole)
    rng = np.random.default_rng(0)
    table = pa.table({"id": np.arange(n), "a": rng.random(n), "b": rng.random(n), "c": rng.integers(0, 1 << 40, n),
                      "d": rng.random(n), "e": rng.random(n)})
    assert table.nbytes > headroom
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=n)
    del table
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "2",
           "MALLOC_MMAP_THRESHOLD_": "131072", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path / "one.parquet"), str(tmp_path / "ws"),
                           str(headroom), "snapshot"], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["rows"] == n


CLI_UNDER_CAP = textwrap.dedent("""
    import resource, runpy, sys
    import pyarrow, pyarrow.parquet, pyarrow.dataset, pandas, numpy, xxhash, blake3
    import tether.cli, tether.plugins.snapshots.commands, tether.plugins.snapshots.create
    headroom = int(sys.argv[1])
    vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
    sys.argv = ["tether", *sys.argv[2:]]
    runpy.run_module("tether", run_name="__main__")
""")


@pytest.mark.slow
def test_running_out_of_memory_is_a_one_line_error_not_a_crash(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 1_000_000
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({f"c{i}": rng.random(n) for i in range(20)}), tmp_path / "wide.parquet")
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CLI_UNDER_CAP, str(48 << 20), "snapshots", "create",
                           str(tmp_path / "wide.parquet"), "--name", "wide", "-w", str(tmp_path / "ws")],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tether: error: ") and "ran out of memory" in lines[0], lines
    assert not any((tmp_path / "ws" / "objects").rglob("*.parquet"))
