"""A service's loop on a thread of the test for the length of a block, stopped the way its command stops it."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def running(loop: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[threading.Thread]:
    """loop(*args, stop, **kwargs) on a thread for the duration of the block, *stop* a threading.Event that is set
    afterwards (as a signal sets it in the real command); the thread is joined (for up to 60 s)."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(*args, stop), kwargs=kwargs)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=60)
