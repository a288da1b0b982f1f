"""contig.core.parallel (ordered_map) and contig.core.compression (ISA-L gzip)."""

from __future__ import annotations

import gzip
import threading
import time

import pytest

from contig.core.compression import gzip_compress, gzip_decompress
from contig.core.parallel import ordered_map


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_ordered_map_keeps_the_items_order(workers):
    def slow_for_small(x: int) -> int:
        time.sleep(0.002 * (10 - x))  # early items finish last: order must still hold
        return x * x

    assert list(ordered_map(slow_for_small, range(10), workers)) == [x * x for x in range(10)]


def test_ordered_map_raises_at_the_failing_items_position_and_stops():
    started: list[int] = []
    lock = threading.Lock()

    def fail_on_three(x: int) -> int:
        with lock:
            started.append(x)
        if x == 3:
            raise ValueError(f"item {x}")
        return x

    seen = []
    with pytest.raises(ValueError, match="item 3"):
        for value in ordered_map(fail_on_three, range(100), 2):
            seen.append(value)
    assert seen == [0, 1, 2]  # everything before the failure, in order, nothing after
    assert max(started) < 3 + 2 + 1  # at most `workers` items ahead were started, not all 100


def test_ordered_map_runs_at_most_workers_ahead():
    running, peak = 0, 0
    lock = threading.Lock()

    def track(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1
        return x

    assert list(ordered_map(track, range(12), 3)) == list(range(12))
    assert 1 < peak <= 3


def test_gzip_compress_roundtrips_through_the_standard_library():
    data = b"".join(b"rs%d\t1\t%d\tA\tG\t0.%06d\n" % (i, 1000 + i, i) for i in range(20_000))
    packed = gzip_compress(data)
    assert gzip.decompress(packed) == data
    assert gzip_compress(data) == packed  # mtime 0: identical bytes on reruns


def test_gzip_decompress_reads_every_member_and_refuses_corrupt_data():
    members = gzip_compress(b"a\tb\n") + gzip.compress(b"1\t2\n") + gzip_compress(b"3\t4\n")
    assert gzip_decompress(members) == gzip.decompress(members) == b"a\tb\n1\t2\n3\t4\n"
    good = gzip.compress(b"hello world " * 100)
    for bad in (good[:-12], good[:12] + bytes(30) + good[42:]):
        with pytest.raises((OSError, EOFError)):
            gzip_decompress(bad)
