"""Run a cached computation in a worker thread while the page shows its progress.

A cached function cannot draw on the page itself: Streamlit replays the
elements a cached function drew on every later hit, and a progress bar made
outside the function cannot be replayed. So the computation runs in a
worker thread and writes its progress into a small shared object, which
the script thread polls to move the bar. If the script stops while waiting
(the visitor changed page or pressed Run again), the worker is told to stop
at its next chunk, raises, and the cache stores nothing for that key.
"""

import threading
from concurrent.futures import ThreadPoolExecutor, wait

import streamlit as st

POLL_SECONDS = 0.25  # often enough for a smooth bar, rarely enough to leave the GIL to training


class Progress:
    """Fraction done and a stop flag, shared between the script and the worker."""

    def __init__(self):
        self.fraction = 0.0
        self.stop_requested = threading.Event()

    def update(self, fraction):
        self.fraction = min(max(fraction, 0.0), 1.0)

    def should_stop(self):
        return self.stop_requested.is_set()


def run_with_progress(cached_function, *args, label="Training…"):
    """Call cached_function(*args, _progress=Progress()) and show a progress bar.

    Returns what the function returns; a cache hit returns at once and the
    bar disappears before it is seen.
    """
    progress = Progress()
    bar = st.progress(0.0, text=label)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(cached_function, *args, _progress=progress)
        try:
            # wait() returns as soon as the work is done, so the result is
            # shown without waiting out the rest of a poll interval.
            while not wait([future], timeout=POLL_SECONDS).done:
                bar.progress(progress.fraction, text=f"{label} {progress.fraction:.0%}")
        except BaseException:
            # The script is being stopped: let the worker end at its next check.
            progress.stop_requested.set()
            raise
    bar.empty()
    return future.result()
