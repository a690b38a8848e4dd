"""A progress page for a browser's cold launch, instead of a tab frozen while the server starts.

When a browser asks to launch a notebook that is not running, :func:`launch_with_progress`
answers at once with a small page and starts the notebook in a background thread of the
web process (which holds the user's lock as any launch does, so concurrent launches still
start exactly one server). The page works without JavaScript: it reloads the launch URL
every two seconds (``<meta http-equiv="refresh">``). With JavaScript it asks the same URL
every quarter second, with an ``X-Pyramid-Notebook-Progress`` header, for a one-line JSON
state, and moves on the moment the notebook answers. Once started, the launch URL redirects
to the notebook as always; if the start failed, it shows the error and the end of the
notebook's log, as a synchronous launch would.

The state of a start lives in ``launch.json`` beside the user's pid file (so it follows the
manager's state folder), shared by every process of the web server: which start, whether it
failed and why, and which process runs it. A start whose process died (the web server was
restarted mid-start) or that overran ``startup_timeout`` is simply started again by the next
request.
"""
import contextlib
import json
import logging
import os
import secrets
import threading
import time

from markupsafe import Markup
from pyramid.response import Response

from pyramid_notebook.core.files import read_json, write_json_atomic
from pyramid_notebook.core.contextparts import same_server
from pyramid_notebook.core.framing import refuse_framing
from pyramid_notebook.core.process import pid_alive
from pyramid_notebook.core.templates import render
from pyramid_notebook.web import metrics
from pyramid_notebook.web.preload import preload_tags, send_early_hints

logger = logging.getLogger(__name__)

#: Query parameter naming the start a progress page waits for.
PARAM = "pyramid_notebook_start"
#: Header with which the page's script asks for the JSON state.
HEADER = "X-Pyramid-Notebook-Progress"


#: The progress page's template (``pyramid_notebook/web/templates``).
TEMPLATE = "progress.html"


def wants_progress_page(request) -> bool:
    """True for a browser navigating (``GET`` with ``Accept: text/html``) or the page's own poll."""
    if request.method not in ("GET", "HEAD"):
        return False
    return HEADER in request.headers or "text/html" in (request.headers.get("Accept") or "")


def read_record(manager, username):
    """The state of the user's latest background start, or ``None``."""
    return read_json(manager.progress_record_path(username))


def _write_record(manager, username, record) -> None:
    path = manager.progress_record_path(username)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_json_atomic(path, record)


def _in_progress(manager, record) -> bool:
    if not record or record.get("state") != "starting":
        return False
    fresh = time.time() - float(record.get("at") or 0) < manager.startup_timeout + 30
    return fresh and pid_alive(record.get("owner"))


def _start_in_background(manager, username, context, start_id, describe_error, registry=None) -> None:
    def run():
        outcome = None
        started_at = time.monotonic()
        try:
            _, created = manager.start_notebook_on_demand(username, context)
            if registry is not None:
                metrics.count_launch(registry, started_at, created)
        except Exception as e:  # noqa: BLE001 - every failure is shown to the user, none is lost
            if registry is not None:
                metrics.count_launch_failure(registry, e)
            status, title, message, details = describe_error(e)
            outcome = {"state": "failed", "status": status, "title": title, "message": message, "details": details}
        record = read_record(manager, username) or {}
        if record.get("id") != start_id:
            return  # a newer start took over the record
        if outcome is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(manager.progress_record_path(username))
        else:
            _write_record(manager, username, dict(record, at=time.time(), **outcome))

    _write_record(manager, username, {"id": start_id, "state": "starting", "owner": os.getpid(), "at": time.time(),
                                      "context_hash": context.get("context_hash")})
    threading.Thread(target=run, name=f"pyramid_notebook start {username}", daemon=True).start()


def _poll_url(request, start_id) -> str:
    params = [(k, v) for k, v in request.GET.items() if k != PARAM] + [(PARAM, start_id)]
    from urllib.parse import urlencode

    return request.path + "?" + urlencode(params)  # relative: right behind any proxy or alternative domain


def _progress_response(request, start_id, notebook_path=None) -> Response:
    url = _poll_url(request, start_id)
    if HEADER in request.headers:
        return _json(request, {"state": "starting"})
    # The notebook page's bundles download while the server starts (web/preload.py): the user
    # reached this page through the shell's view, so may open a shell.
    body = render(TEMPLATE, url=url, header=HEADER, preload=Markup(preload_tags(request, notebook_path)))
    response = Response(body, content_type="text/html", charset="utf-8", cache_control="no-store")
    return refuse_framing(response, others_only=True)


def _json(request, state) -> Response:
    response = Response(json.dumps(state), content_type="application/json", charset="utf-8")
    response.cache_control = "no-store"
    return response


def launch_with_progress(request, username, context, manager, running_url, describe_error, error_response):
    """Answer a browser's launch: redirect if running, else a progress page while it starts.

    :param context: the filled-in notebook context (with ``context_hash``).
    :param running_url: ``callable(context) -> str``, the notebook page of a running context.
    :param describe_error: ``callable(exception) -> (status, title, message, details)``.
    :param error_response: ``callable(status, title, message, details) -> Response``.
    """
    from pyramid.httpexceptions import HTTPFound

    if HEADER not in request.headers:
        send_early_hints(request, context.get("notebook_path"))  # gunicorn: before any answer
    running = manager.get_notebook_status(username)
    if running and (running.get("context_hash") == context["context_hash"] or same_server(running, context)) and \
            manager.answers(running) and not _in_progress(manager, read_record(manager, username)):
        # The same shell, or another one opened in the running server (its kernel starts in about
        # a second: no page needed). The backend knows which; a start is never needed here.
        try:
            running, _ = manager.start_notebook_on_demand(username, context)
        except Exception as e:  # noqa: BLE001 - shown as the synchronous launch shows it
            return error_response(*describe_error(e))
        if HEADER in request.headers:
            return _json(request, {"state": "ready", "url": running_url(running)})
        return HTTPFound(running_url(running))
    record = read_record(manager, username)
    if _in_progress(manager, record):
        return _progress_response(request, record["id"], context.get("notebook_path"))
    waited_for = request.GET.get(PARAM)
    if record and record.get("state") == "failed" and waited_for:
        if HEADER in request.headers:
            return _json(request, {"state": "failed"})
        return error_response(record["status"], record["title"], record["message"], record.get("details") or "")
    start_id = secrets.token_hex(8)
    _start_in_background(manager, username, context, start_id, describe_error, request.registry)
    return _progress_response(request, start_id, context.get("notebook_path"))
