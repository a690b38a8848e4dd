"""Prometheus metrics of the notebooks, served at ``/notebook-admin/metrics`` (:mod:`.admin`).

A :class:`prometheus_client.CollectorRegistry` of the site's own (one per Pyramid app, kept on
its registry), never prometheus_client's global one, so the site's other metrics and other apps
in the same process stay apart. Two kinds of metrics:

* counted as things happen, per web server process: launches and their duration, launch
  failures by reason, proxied requests by kind, audit records (:func:`count_audit_record` is the
  one call the audit trail makes);
* read from the backend when scraped: running notebooks, kernels by state, memory and its
  limit per user, and the websockets this process relays right now.

Under a server with several processes (gunicorn, uWSGI), each process counts its own: scrape
each, or sum them in Prometheus.
"""
import threading
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from pyramid_notebook.relays import counters

PREFIX = "pyramid_notebook_"
#: Launch duration buckets, seconds: a warm reuse is milliseconds, a cold start a few seconds.
LAUNCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)

_create_lock = threading.Lock()


class InventoryCollector:
    """Gauges read from the backend's :meth:`notebook_inventory` at each scrape."""

    def __init__(self, get_backend):
        self.get_backend = get_backend

    def collect(self):
        """Yield the gauges (nothing about the notebooks if the backend cannot answer)."""
        websockets = GaugeMetricFamily(PREFIX + "open_websockets", "Websockets this process relays now")
        websockets.add_metric([], counters.open_websockets())
        yield websockets
        backend = self.get_backend()
        try:
            rows = backend.notebook_inventory(cpu=False) if backend is not None else []
        except Exception:  # a hub that is down must not make the whole page fail
            up = GaugeMetricFamily(PREFIX + "backend_up", "1 if the notebook backend answered this scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily(PREFIX + "backend_up", "1 if the notebook backend answered this scrape")
        up.add_metric([], 1)
        yield up
        running = GaugeMetricFamily(PREFIX + "running_notebooks", "Notebook servers running")
        running.add_metric([], sum(1 for r in rows if r.get("running")))
        yield running
        kernels = GaugeMetricFamily(PREFIX + "kernels", "Kernels of running notebooks", labels=["state"])
        states = {}
        for row in rows:
            for kernel in row.get("kernels") or []:
                state = kernel.get("execution_state") or "unknown"
                states[state] = states.get(state, 0) + 1
        for state, count in sorted(states.items()):
            kernels.add_metric([state], count)
        yield kernels
        memory = GaugeMetricFamily(PREFIX + "memory_bytes", "Memory of a user's notebook server and kernels "
                                   "(PSS where the system has it)", labels=["user"])
        limit = GaugeMetricFamily(PREFIX + "memory_limit_bytes", "A user's memory limit (0: none)",
                                  labels=["user"])
        for row in rows:
            if row.get("running"):
                memory.add_metric([str(row["user"])], row.get("memory") or 0)
                limit.add_metric([str(row["user"])], row.get("memory_limit") or 0)
        yield memory
        yield limit


class NotebookMetrics:
    """The metrics of one site: its registry and the counters the views update."""

    def __init__(self, get_backend=None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.launches = Counter(PREFIX + "launches", "Notebook servers started", ["backend"],
                                registry=self.registry)
        self.launch_duration = Histogram(PREFIX + "launch_duration_seconds",
                                         "Seconds from a launch's request to a server that answers",
                                         ["backend"], buckets=LAUNCH_BUCKETS, registry=self.registry)
        self.launch_failures = Counter(PREFIX + "launch_failures", "Launches that failed, by reason",
                                       ["reason"], registry=self.registry)
        self.proxied_requests = Counter(PREFIX + "proxied_requests", "Requests to notebooks through the site",
                                        ["kind"], registry=self.registry)
        self.audit_records = Counter(PREFIX + "audit_records", "Audit trail records written", ["action"],
                                     registry=self.registry)
        if get_backend is not None:
            self.registry.register(InventoryCollector(get_backend))

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


def get_metrics(registry) -> NotebookMetrics:
    """The site's :class:`NotebookMetrics`, made on first use."""
    metrics = getattr(registry, "pyramid_notebook_metrics", None)
    if metrics is None:
        with _create_lock:
            metrics = getattr(registry, "pyramid_notebook_metrics", None)
            if metrics is None:
                metrics = NotebookMetrics(lambda: getattr(registry, "pyramid_notebook_manager", None))
                registry.pyramid_notebook_metrics = metrics
    return metrics


def _backend_name(registry) -> str:
    settings = getattr(registry, "pyramid_notebook_settings", None)
    return getattr(settings, "backend", "local")


def failure_reason(exc) -> str:
    """A short label for a launch failure: ``bad_username``, ``folder_unusable``, ``no_slot``, ..."""
    name = type(exc).__name__
    return {"BadUsername": "bad_username", "NoFreePort": "no_slot", "TooManyNotebooks": "no_slot",
            "HubUnavailable": "backend_unavailable", "HubError": "backend_error",
            "BackendUnavailable": "backend_unavailable", "NotebookStartError": "start_failed"}.get(
        name, "folder_unusable" if isinstance(exc, OSError) else "other")


def count_launch(registry, started_at, created) -> None:
    """Count a launch that succeeded; ``created``: a new server (else one that already ran)."""
    if created:
        backend = _backend_name(registry)
        metrics = get_metrics(registry)
        metrics.launches.labels(backend).inc()
        metrics.launch_duration.labels(backend).observe(time.monotonic() - started_at)


def count_launch_failure(registry, exc) -> None:
    """Count a launch that failed with ``exc``."""
    get_metrics(registry).launch_failures.labels(failure_reason(exc)).inc()


def count_proxied(registry, kind) -> None:
    """Count a request relayed to a notebook: ``http``, ``static``, ``websocket`` or ``accel``."""
    get_metrics(registry).proxied_requests.labels(kind).inc()


def count_audit_record(registry, action="") -> None:
    """Count one audit record (the audit trail calls this for each record it writes)."""
    get_metrics(registry).audit_records.labels(action or "other").inc()


__all__ = ["CONTENT_TYPE_LATEST", "NotebookMetrics", "get_metrics", "count_launch", "count_launch_failure",
           "count_proxied", "count_audit_record", "failure_reason"]
