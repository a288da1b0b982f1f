"""Work done ahead by a few threads, consumed in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """``function(item)`` for each item, yielded in the items' order, computed by up to ``workers``
    threads at most ``workers`` items ahead of the consumer (so memory holds ~2 x workers results).

    An exception is raised where its item's result would have been yielded, as in a sequential
    loop; items not yet started are then cancelled. ``workers`` <= 1 runs in the calling thread.
    Useful when ``function`` spends its time in code that releases the GIL (polars, compression).
    """
    if workers <= 1:
        yield from map(function, items)
        return
    pool = ThreadPoolExecutor(workers)
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
