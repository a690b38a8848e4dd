"""Counts the relays keep for the metrics page (:mod:`pyramid_notebook.web.metrics`).

Relays sit below the web layer and may not import it, so they count here and the metrics
page reads the counts when scraped. Per web server process, like every metric.
"""
import contextlib
import threading

_lock = threading.Lock()
_open_websockets = 0


def open_websockets() -> int:
    """Websockets this process relays right now."""
    return _open_websockets


@contextlib.contextmanager
def websocket_open():
    """Count one relayed websocket for as long as the block runs."""
    global _open_websockets
    with _lock:
        _open_websockets += 1
    try:
        yield
    finally:
        with _lock:
            _open_websockets -= 1
