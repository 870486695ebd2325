"""`tether verify --gc` never removes an object that a concurrent writer may still reference."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
from tether.config import BackendConfig
from tether.plugins.snapshots.create import create_snapshot
from tether.plugins.snapshots.verify import verify_workspace
from tether.workspace import Workspace

GC_LOOP = textwrap.dedent("""
    import os, sys
    from tether.manager import PluginHost
    from tether.plugins.snapshots.verify import verify_workspace
    from tether.workspace import Workspace

    root, stop, grace = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ws = Workspace.open(PluginHost(entry_points=False), root)
    rounds = removed = 0
    print("started", flush=True)
    while not os.path.exists(stop):
        report = verify_workspace(ws, gc=True, grace_seconds=grace)
        rounds += 1
        removed += len(report["removed"])
    print("gc rounds", rounds, "removed", removed, flush=True)
""")


def frame(i: int) -> pd.DataFrame:
    rng = np.random.default_rng(i)
    return pd.DataFrame({"k": np.arange(200) + 1000 * i, "x": rng.normal(size=200)})


def age_objects(storage, keys, seconds: float = 7200) -> None:
    old = time.time() - seconds
    for key in keys:
        with contextlib.suppress(FileNotFoundError):  # the gc loop was quicker
            os.utime(storage.path / key, (old, old))


def test_gc_in_a_loop_never_breaks_a_concurrent_create_that_reuses_objects(tmp_path, host):
    root = tmp_path / ".tether"
    main = Workspace.open(host, root)
    # a second metadata store over the same storage: what it writes is unreferenced in the main one,
    # as the objects of a write interrupted before its record would be
    side = Workspace.open(host, root, storage=BackendConfig(plugin="local"),
                          store=BackendConfig(plugin="sqlite", params={"path": str(tmp_path / "side.db")}))
    stop = tmp_path / "stop"
    script = tmp_path / "gc_loop.py"
    script.write_text(GC_LOOP)
    gc = subprocess.Popen([sys.executable, str(script), str(root), str(stop), "0"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        assert gc.stdout.readline().startswith("started")
        broken = []
        for i in range(100):
            leftover = create_snapshot(frame(i), name=f"d{i % 7}", workspace=side)
            age_objects(side.storage, [ref.key for ref in leftover.objects])  # older than any grace
            snap = create_snapshot(frame(i), name=f"d{i % 7}", workspace=main)  # reuses those objects
            assert [r.key for r in snap.objects] == [r.key for r in leftover.objects]
            broken += [(i, ref.key) for ref in snap.objects if not (main.storage.path / ref.key).is_file()]
    finally:
        stop.touch()
        out, err = gc.communicate(timeout=120)
    assert gc.returncode == 0, err[-2000:]
    assert "gc rounds" in out
    assert broken == []
    report = verify_workspace(main)
    assert report["ok"], report
    assert len(main.store.find("snapshot")) == 100
    main.close()
    side.close()


def test_gc_removes_leftovers_of_writers_that_are_gone_but_not_of_live_ones(tmp_path, host):
    root = tmp_path / ".tether"
    ws = Workspace.open(host, root)
    live_temp = ws.storage.temp_path(".parquet")  # this process is alive: its temp file is leased
    kept = ws.storage.put_bytes(b"held by a live writer")
    script = "import sys; from tether.plugins.local_storage.storage import LocalStorage\n" \
             "s = LocalStorage(root=sys.argv[1]); s.put_bytes(b'left by a dead writer'); s.temp_path('.x')"
    subprocess.run([sys.executable, "-c", script, str(ws.storage.path)], check=True)
    report = verify_workspace(ws, gc=True, grace_seconds=0)
    assert len(report["removed"]) == 2, report  # the dead writer's object and temp file
    assert (ws.storage.path / kept.key).is_file() and live_temp.is_file()
    ws.storage.release([kept.key])
    live_temp.unlink()
    report = verify_workspace(ws, gc=True, grace_seconds=0)
    assert report["removed"] == [kept.key]
    ws.close()
