"""Jupyter server extension: nothing a client sends runs before the audit trail has it.

The notebook server is the one place every client's code passes through, whatever
relays it (pserve's direct websockets, the uWSGI and ASGI relays, nginx in accel mode,
a JupyterHub's proxy) and whichever kernel websocket protocol it speaks. So the
recording happens here, outside the kernel that runs the code:

* kernel messages: :class:`~.audit_kernel.AuditingKernelWebsocketConnection` (Jupyter's
  ``kernel_websocket_connection_class``) records, passes or refuses each one by the allow-list
  of :mod:`.kernel_messages` (cells with their ``user_expressions``, ``input_reply``, comms,
  the debugger);
* terminals: their websocket handler records what is typed before the shell gets it;
* files: writes through the contents API are recorded (:mod:`.audit_files`).

Who, from where, from which shell and why come from the ``audit`` key of the notebook's
context, which the web site writes at each launch (:mod:`pyramid_notebook.web.audit`), never
from the browser (:mod:`.recorder`). Fail closed: a record that cannot be stored (store
unwritable or full) means the cell is answered with an error the notebook shows, and typed
input is not passed on, so nothing unrecorded runs. The format and the stream's place are
:mod:`pyramid_notebook.core.audit`'s. This module loads the parts and shows the launch's reason.
"""
import logging
import logging.config
import os

from pyramid_notebook.core import audit
from pyramid_notebook.server import audit_files, recorder
# Importable from here as before (bench/audit.py, sites' configs naming the class).
from pyramid_notebook.server.audit_kernel import V1, AuditingKernelWebsocketConnection  # noqa: F401
from pyramid_notebook.server.recorder import Auditor, get_auditor, refusal_text  # noqa: F401

log = logging.getLogger(__name__)


def __getattr__(name):
    """``AUDITOR``: the server's auditor, kept in :mod:`.recorder`."""
    if name == "AUDITOR":
        return recorder.AUDITOR
    raise AttributeError(name)


# --- terminals ------------------------------------------------------------------------------


def _patch_terminals() -> bool:
    """Record each terminal's input stream before the shell gets it (:mod:`.audit_terminals`)."""
    from pyramid_notebook.server.audit_terminals import patch_terminals

    return patch_terminals()


# --- the reason, shown in the notebook ---------------------------------------------------------

BANNER = ('<div id="pyramid-notebook-audit-reason" title="Recorded with everything you run here" '
          'style="position:fixed;bottom:0;left:0;z-index:10000;padding:2px 8px;font:12px sans-serif;'
          'background:#fff3cd;color:#664d03;border:1px solid #ffe69c">Audited session. Reason: {reason}</div>')


def reason_transform_class():
    """A tornado output transform that puts the launch's reason on every notebook HTML page.

    Made on first use so that importing this module does not need tornado's internals.
    """
    import html

    from tornado.web import OutputTransform

    class ReasonBanner(OutputTransform):
        """Adds :data:`BANNER` before ``</body>`` of HTML pages while a reason is on record."""

        def transform_first_chunk(self, status_code, headers, chunk, finishing):
            """The page with the banner (whole pages only: Jupyter renders them in one piece)."""
            auditor = recorder.AUDITOR
            if auditor is not None and status_code == 200 and finishing and \
                    str(headers.get("Content-Type", "")).startswith("text/html") and b"</body>" in chunk:
                reason = auditor.session().get("reason")
                if reason and auditor.enabled:
                    banner = BANNER.format(reason=html.escape(reason)).encode("utf-8")
                    chunk = chunk.replace(b"</body>", banner + b"</body>", 1)
                    if "Content-Length" in headers:
                        headers["Content-Length"] = str(len(chunk))
            return status_code, headers, chunk

    return ReasonBanner


# --- the extension --------------------------------------------------------------------------


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    get_auditor(serverapp)
    if not issubclass(serverapp.kernel_websocket_connection_class, AuditingKernelWebsocketConnection):
        serverapp.log.error("pyramid_notebook audit: kernel_websocket_connection_class is %s; cells are NOT recorded",
                            serverapp.kernel_websocket_connection_class)
    # First, so that it sees the page before any compression does.
    serverapp.web_app.transforms.insert(0, reason_transform_class())
    if not _patch_terminals():
        serverapp.log.info("pyramid_notebook audit: no terminals extension; nothing to record there")
    audit_files.install(serverapp)
    auditor = get_auditor(serverapp)
    _configure_logging(auditor.session().get("log_config"), serverapp.log)
    serverapp.log.info("pyramid_notebook audit: recording to %s", auditor.store.path)


def _configure_logging(path, app_log) -> None:
    """Apply the site's logging configuration (an INI file) so audit records leave the box
    as the site's own log records do; without one, they go to this server's stderr log."""
    audit_logger = logging.getLogger(audit.LOGGER_NAME)
    audit_logger.setLevel(logging.INFO)
    if path:
        try:
            logging.config.fileConfig(path, defaults={"here": os.path.dirname(os.path.abspath(path)),
                                                      "__file__": os.path.abspath(path)},
                                      disable_existing_loggers=False)
            return
        except Exception as e:  # noqa: BLE001 - a broken logging section must not stop the notebook
            app_log.error("pyramid_notebook audit: cannot apply the logging configuration of %s: %s", path, e)
    if not audit_logger.handlers:
        # Jupyter's own handlers take warnings and up only: give the records a handler of their own.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        audit_logger.addHandler(handler)
        audit_logger.propagate = False
