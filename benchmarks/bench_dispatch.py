"""Overhead of dispatching one lifecycle hook through pluggy with 5 plugins registered.

Five plugins implement ``tether_split``: three observers (``wrapper=True``), one
``tryfirst`` implementation that returns ``None`` (declines), and the answering one. The
benchmark times ``host.hook.tether_split(...)`` against calling the answering function
directly, so the difference is what the plugin system costs per stage.

Run: ``python benchmarks/bench_dispatch.py [--calls 200000]``
"""

from __future__ import annotations

import argparse
import timeit

import conditions  # benchmarks/conditions.py: load average and peak memory
from tether import hookimpl
from tether.manager import PluginHost

SENTINEL = object()


class Observer:
    @hookimpl(wrapper=True)
    def tether_split(self, stage, context):
        return (yield)


class Declines:
    @hookimpl(tryfirst=True)
    def tether_split(self, snapshot):
        return None


class Answers:
    @hookimpl(tryfirst=True)
    def tether_split(self, snapshot, stage, context):
        return SENTINEL


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    host = PluginHost(entry_points=False)
    for i in range(3):
        host.register(Observer(), name=f"observer-{i}")
    host.register(Answers(), name="answers")
    host.register(Declines(), name="declines")
    hook = host.hook
    answer = Answers().tether_split
    assert hook.tether_split(snapshot=None, stage=None, context=None) is SENTINEL

    dispatched = min(timeit.repeat(lambda: hook.tether_split(snapshot=None, stage=None, context=None),
                                   number=args.calls, repeat=5)) / args.calls
    direct = min(timeit.repeat(lambda: answer(snapshot=None, stage=None, context=None),
                               number=args.calls, repeat=5)) / args.calls
    print(f"{'call':<58} {'per call':>12}")
    print(f"{'direct function call':<58} {direct * 1e9:>9.0f} ns")
    print(f"{'host.hook.tether_split, 5 plugins (3 wrappers, 2 impls)':<58} {dispatched * 1e9:>9.0f} ns")
    print(f"dispatch overhead: {(dispatched - direct) * 1e6:.2f} us per stage call "
          f"({dispatched / direct:.1f}x a direct call)")


if __name__ == "__main__":
    main()
    print(f"machine: {conditions.describe()}")
