"""Start-up cost of tether as plugins multiply.

Measures, in one run:
* ``python -X importtime -c 'import tether'``: the cumulative import time of ``tether``;
* wall time of ``tether --help`` and ``tether plugins`` with 50 dummy entry-point plugins
  installed (each a real distribution with a ``tether`` entry point and a hook);
* the same commands with no extra plugins, and a bare ``python -c pass`` for reference.

Bytecode caching is on (``PYTHONDONTWRITEBYTECODE`` is removed for the children and a
warm-up run writes the ``.pyc`` files), as in any installed environment.

Run: ``python benchmarks/bench_startup.py [--plugins 50] [--repeat 15]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGIN = '''
from typing import ClassVar
import attrs
from tether import hookimpl
from tether.backends import SplitStrategy

@attrs.frozen(kw_only=True)
class Dummy(SplitStrategy):
    name: ClassVar[str] = "dummy{i}"

@hookimpl
def tether_add_backends(backends):
    backends.add(Dummy)
'''


def make_plugins(root: Path, n: int) -> None:
    for i in range(n):
        (root / f"tether_dummy_{i}.py").write_text(PLUGIN.format(i=i))
        dist = root / f"tether_dummy_{i}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tether-dummy-{i}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[tether]\ndummy{i} = tether_dummy_{i}\n")


def wall(cmd: list[str], env: dict, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def import_time_ms(env: dict, repeat: int) -> float:
    values = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tether"], env=env,
                             capture_output=True, text=True, check=True).stderr
        cumulative = [int(m.group(1)) for m in re.finditer(r"\|\s*(\d+) \|\s*tether$", out, re.MULTILINE)]
        values.append(cumulative[-1] / 1000)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    tether = [sys.executable, "-m", "tether"]
    # Measure an installed tether as users run it: bytecode cached (a warm-up run writes it).
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        make_plugins(Path(tmp), args.plugins)
        env = {**base_env, "PYTHONPATH": tmp + os.pathsep + base_env.get("PYTHONPATH", "")}
        subprocess.run(tether + ["--help"], env=env, capture_output=True, check=True)  # warm-up
        listed = subprocess.run(tether + ["plugins", "--json"], env=env, capture_output=True, text=True,
                                check=True).stdout
        dummies = [row for row in json.loads(listed) if str(row["name"]).startswith("dummy")]
        # other installed entry-point plugins may be listed too; only the dummies are counted
        assert len(dummies) == args.plugins, f"found {len(dummies)} of {args.plugins} dummy plugins"
        rows = [
            ("python -c pass", wall([sys.executable, "-c", "pass"], base_env, args.repeat)),
            ("import tether (-X importtime, cumulative)", import_time_ms(base_env, args.repeat)),
            ("tether --help, no extra plugins", wall(tether + ["--help"], base_env, args.repeat)),
            (f"tether --help, {args.plugins} entry-point plugins", wall(tether + ["--help"], env, args.repeat)),
            ("tether plugins, no extra plugins", wall(tether + ["plugins"], base_env, args.repeat)),
            (f"tether plugins, {args.plugins} entry-point plugins", wall(tether + ["plugins"], env, args.repeat)),
            (f"tether runs ls, {args.plugins} entry-point plugins (none imported)",
             wall(tether + ["runs", "ls", "-w", str(Path(tmp) / "ws")], env, args.repeat)),
        ]
    bare = rows[0][1]
    print(f"{'measurement':<62} {'median ms':>10} {'x python':>9}")
    for label, ms in rows:
        print(f"{label:<62} {ms:>10.1f} {ms / bare:>9.1f}")


if __name__ == "__main__":
    main()
