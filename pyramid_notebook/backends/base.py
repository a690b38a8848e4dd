"""The small interface the views call to run users' notebooks, whatever runs them.

Two backends implement it:

* :class:`pyramid_notebook.backends.local.manager.NotebookManager` (``pyramid_notebook.backend = local``,
  the default): one daemonized Jupyter server per user on the web server's own machine.
* :class:`pyramid_notebook.backends.hub.backend.HubBackend` (``pyramid_notebook.backend = jupyterhub``): the
  users' servers are JupyterHub's, spawned wherever its spawner puts them, and every web node
  asks the hub, so several web nodes share them.

``config.include("pyramid_notebook")`` builds the one the settings name and keeps it as
``registry.pyramid_notebook_manager``; :func:`pyramid_notebook.web.views.get_notebook_manager`
returns it. The views never ask which one it is.

A backend's *context* is the dict the site passed to ``launch_notebook`` (see the README),
completed by the backend. Whatever relays requests to the notebook connects to
``context.get("http_host") or "127.0.0.1"``, port ``context["http_port"]``, with
``Authorization: token <context["token"]>`` and the request's path unchanged, and forwards only
paths under ``context["notebook_path"]``.
"""
import abc


class BackendUnavailable(RuntimeError):
    """What runs the notebooks cannot be reached (e.g. the hub is down): a 503 page."""


class NotebookBackend(abc.ABC):
    """Start, find and stop one notebook server per user."""

    #: Whether a browser's cold launch may get the progress page (:mod:`pyramid_notebook.web.progress`),
    #: which keeps each start's state beside the user's pid file: only backends with such local state.
    #: The others answer the launch once the server is ready, as without the page.
    progress_pages = False

    @abc.abstractmethod
    def start_notebook_on_demand(self, name, context):
        """Make sure the user's notebook runs with ``context``; return ``(context, created)``.

        The same ``context_hash`` reuses the running notebook (``created`` is False); a different
        one restarts it. Raises :class:`~pyramid_notebook.core.names.BadUsername`,
        :class:`~pyramid_notebook.backends.local.manager.TooManyNotebooks` (or ``NoFreePort``),
        :class:`~pyramid_notebook.backends.local.manager.NotebookStartError` or
        :class:`BackendUnavailable`.
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

    def on_site_start(self) -> None:
        """Called once the site's WSGI app exists (Pyramid's ``ApplicationCreated``): start, in the
        background, whatever makes the first launch fast. Must return at once. Nothing by default."""

    def close(self) -> None:
        """Stop what :meth:`on_site_start` started in this process (users' notebooks keep running)."""
