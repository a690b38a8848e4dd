"""The small interface the views call to run users' notebooks, whatever runs them.

Two backends implement it:

* :class:`pyramid_notebook.notebookmanager.NotebookManager` (``pyramid_notebook.backend = local``,
  the default): one daemonized Jupyter server per user on the web server's own machine.
* :class:`pyramid_notebook.backends.hub.backend.HubBackend` (``pyramid_notebook.backend = jupyterhub``): the
  users' servers are JupyterHub's, spawned wherever its spawner puts them, and every web node
  asks the hub, so several web nodes share them.

``config.include("pyramid_notebook")`` builds the one the settings name and keeps it as
``registry.pyramid_notebook_manager``; :func:`pyramid_notebook.web.views.get_notebook_manager`
returns it. The views never ask which one it is.

A backend's *context* is the dict the site passed to ``launch_notebook`` (see the README),
completed by the backend. Whatever relays requests to the notebook connects to
``pyramid_notebook.core.context.upstream_host(context)``, port ``context["http_port"]``, with
``Authorization: token <context["token"]>`` and the request's path unchanged, and forwards only
paths under ``context["notebook_path"]``.
"""
import abc


class BackendUnavailable(RuntimeError):
    """What runs the notebooks cannot be reached (e.g. the hub is down): a 503 page."""


class NoFreePort(RuntimeError):
    """Every port in the configured range is taken: a 503 page."""


class TooManyNotebooks(RuntimeError):
    """``max_notebooks`` users already have a notebook running (or the hub's limit): a 503 page."""


class NotebookStartError(RuntimeError):
    """The notebook server died or did not answer in time while starting: a 500 page with its log.

    ``log_tail`` holds the end of the server's log. An :class:`OSError` (read-only or full notebook
    folder) is the ``__cause__`` when the files a start needs could not be written.
    """

    def __init__(self, message, log_tail=""):
        super().__init__(message)
        self.log_tail = log_tail


class NotebookBackend(abc.ABC):
    """Start, find and stop one notebook server per user."""

    #: Whether a browser's cold launch may get the progress page (:mod:`pyramid_notebook.web.progress`),
    #: which keeps each start's state beside the user's pid file: only backends with such local state.
    #: The others answer the launch once the server is ready, as without the page.
    progress_pages = False

    def progress_record_path(self, name):
        """The file where a progress page keeps the state of the user's background start.

        Only for backends with ``progress_pages``; every web process of the site must see it.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no progress state")

    def answers(self, context) -> bool:
        """True if the running notebook of ``context`` accepts connections right now."""
        return True

    @abc.abstractmethod
    def start_notebook_on_demand(self, name, context):
        """Make sure the user's notebook runs with ``context``; return ``(context, created)``.

        The same ``context_hash`` reuses the running notebook (``created`` is False); a different
        one restarts it. Raises :class:`~pyramid_notebook.core.names.BadUsername`,
        :class:`TooManyNotebooks`, :class:`NoFreePort`, :class:`NotebookStartError`,
        :class:`BackendUnavailable` or :class:`OSError` (an unusable notebook folder).
        """

    @abc.abstractmethod
    def stop_notebook(self, name) -> bool:
        """Stop the user's notebook; return True if one was running. Files are kept."""

    @abc.abstractmethod
    def get_notebook_status(self, name):
        """The context of the user's running notebook (with ``http_port`` and ``token``), or None.

        Asked on every proxied request, so implementations answer from a cache when they can.
        """

    @abc.abstractmethod
    def get_context(self, name):
        """The user's context as last started, running or not, or None."""

    @abc.abstractmethod
    def is_running(self, name) -> bool:
        """True if the user's notebook server is running (or starting)."""

    @abc.abstractmethod
    def list_notebooks(self) -> list:
        """One dict per user with a notebook: ``user``, ``alive``, ``started``, ``context_hash``, ...

        What the admin command (``pyramid-notebook list``) shows.
        """

    def update_audit(self, name, audit: dict) -> None:
        """Give the user's running notebook the audit information of a new launch (who, from
        where, why; see :mod:`pyramid_notebook.web.audit`) without restarting it.

        The default does nothing: the notebook keeps the information it was started with.
        """

    def notebook_inventory(self, cpu=True) -> list:
        """Every user's notebook, running or not, as the admin console shows it (issue 23).

        One dict per user: ``user``, ``running``, ``state``, ``started``, ``last_activity``,
        ``shell`` (what the context runs), ``context_hash``, ``kernels`` (each with ``id``, ``name``,
        ``execution_state`` busy/idle, ``last_activity``, ``connections``, ``notebooks`` and, where
        the backend can see the process, ``memory``), ``memory`` (bytes: server plus kernels, PSS
        where the system has it), ``memory_kind``, ``memory_limit``, ``cpu_percent`` and
        ``log_tail`` (lines, secrets masked). Keys a backend cannot know are None or empty.
        ``cpu=False`` skips the CPU measurement (metrics scrapes). This default builds the rows from
        :meth:`list_notebooks` alone.
        """
        return [{"user": row.get("user"), "running": bool(row.get("alive")), "state": row.get("state"),
                 "started": row.get("started"), "last_activity": row.get("last_activity"), "shell": "",
                 "context_hash": row.get("context_hash"), "kernels": [], "memory": 0, "memory_kind": None,
                 "memory_limit": 0, "cpu_percent": None, "log_tail": []} for row in self.list_notebooks()]

    def sync_shares(self, owner, grants) -> None:
        """Make what runs the notebooks agree with ``owner``'s live grants of shared sessions (issue 31;
        ``pyramid_notebook.core.shares.Grant``, all of them), after a grant was made or ended.

        The local backend needs nothing: the site is the only way in. The hub backend makes and deletes
        JupyterHub shares (:mod:`pyramid_notebook.backends.hub.shares`). Raises :class:`BackendUnavailable`.
        """

    def guest_context(self, owner, guest, grant, running) -> dict:
        """The context a guest's request to ``owner``'s running server (``running``) is relayed with.

        The default is ``running`` itself: the local server tells the guest by the person the site signs.
        The hub backend puts the guest's own token for the owner's server in it. Raises
        :class:`BackendUnavailable`.
        """
        return running

    def on_site_start(self) -> None:
        """Called once the site's WSGI app exists (Pyramid's ``ApplicationCreated``): start, in the
        background, whatever makes the first launch fast. Must return at once. Nothing by default."""

    def warm_kernels(self, context) -> None:
        """Called by the site's warm-up at start with a context like its shells': prepare, now, what
        their kernels will need (the local backend: the site's kernel zygote). Nothing by default."""

    def close(self) -> None:
        """Stop what :meth:`on_site_start` started in this process (users' notebooks keep running)."""
