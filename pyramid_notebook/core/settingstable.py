"""The table of ``pyramid_notebook.*`` settings, with their documentation.

:func:`pyramid_notebook.core.settings.parse_settings` reads exactly these names (a test holds it to
:class:`~pyramid_notebook.core.settings.NotebookSettings`) and warns about any other
``pyramid_notebook.*`` name (a typo); ``docs/settings.rst`` is generated from this table, so the
reference cannot drift from the code. The texts are reStructuredText; ```Title`_`` links to a
section of the README.
"""
import dataclasses
import textwrap

from pyramid_notebook.core.settingstable_audit import AUDIT_REVIEW_SETTINGS
from pyramid_notebook.core.settingstable_kernels import KERNEL_SETTINGS
from pyramid_notebook.core.settingstable_shares import SHARE_SETTINGS


@dataclasses.dataclass(frozen=True)
class Setting:
    """One entry of the settings reference."""

    #: The definition term, reStructuredText: ````pyramid_notebook.name```` and its default.
    term: str
    #: What it does, reStructuredText.
    doc: str

    @property
    def names(self) -> tuple:
        """The setting names (without ``pyramid_notebook.``) this entry documents."""
        import re

        return tuple(re.findall(r"``pyramid_notebook\.(\w+)``", self.term))

def _entry(term, doc) -> Setting:
    return Setting(term, textwrap.dedent(doc).strip())


#: Every setting, in the order of the reference.
SETTINGS = (
    _entry(
        '``pyramid_notebook.shell_principals`` (default empty: no routes)',
        """
        Principals (separated by spaces or commas, e.g. ``role:editor alice``) granted the ``shell``
        permission on the routes the include then adds: ``/notebook/shell``, ``/notebook/shutdown``
        and ``/notebook/*`` (see `The INI-only set-up`_). Empty: the include adds no routes and your
        own views do the job.
        """),
    _entry(
        '``pyramid_notebook.principals`` (default empty)',
        """
        Dotted name of a callable ``(request) -> principals``. Set, the add-on decides who may use its
        routes (``shell_principals``, ``admin_principals``) itself, holding these principals against
        the routes' ACL, instead of asking the site's security policy. Empty: the site's policy
        decides when it reads ``__acl__`` (asked once at start); when it does not (a legacy
        authorization policy of the site's own), the add-on decides from the legacy authentication
        policy's effective principals, or the ``authenticated_userid`` (see `Any security
        policy`_). A policy or callable that raises gives a 503 page naming this setting.
        """),
    _entry(
        '``pyramid_notebook.config_file`` (default empty)',
        """
        The site's INI file, usually ``%(__file__)s``: the kernels of ``/notebook/shell`` get what
        ``pshell`` gives for it, ``[pshell]`` section included. Must be an existing file.
        """),
    _entry(
        '``pyramid_notebook.notebook_folder`` (required with the local backend)',
        """
        Folder holding one sub-folder per user with their notebooks and files, ``.state/`` with each
        user's runtime state (pid file, ``context.json``, logs, Jupyter and IPython config) and
        ``.locks/``. Usernames that are not plain (letters, digits, ``_.@+-``) get a safe escaped folder
        name; nothing can point outside this folder.
        """),
    _entry(
        '``pyramid_notebook.kill_timeout`` (default ``3600``)',
        """
        Seconds after start when a notebook stops itself, whatever it is doing.
        """),
    _entry(
        '``pyramid_notebook.websocket_proxy`` (default empty)',
        """
        Dotted name of a callable ``(request, port)`` that proxies the notebook's websockets through the
        site: ``pyramid_notebook.asgi.serve_websocket`` under uvicorn (`ASGI: uvicorn`_),
        ``pyramid_notebook.uwsgi.serve_websocket`` under uWSGI. It finds the notebook's context in
        ``request.environ["pyramid_notebook.context"]``. Empty: the notebook page connects its
        websockets straight to ``ws://<site host>:<notebook port>``, which only works when the browser
        runs on the same machine as the notebook (the original's pserve mode, with waitress: a browser
        on another machine, or a container with only the site's port published, loads the page but its
        kernel never connects).
        """),
    _entry(
        '``pyramid_notebook.alternative_domain`` (default empty)',
        """
        An origin such as ``https://shell.example.com`` to serve notebook pages from instead of the
        site's own host name. It is also the only other origin allowed to talk to the notebook. The
        site's login must reach that host name too (a cookie on the parent domain, ``example.com``),
        and both names must lead to the same site, which proxies the notebook's websockets (for
        example ``pyramid_notebook.uwsgi.serve_websocket``): see `Alternative domain`_.
        """),
    _entry(
        '``pyramid_notebook.port_base`` (default ``29000``) and ``pyramid_notebook.port_range`` (default ``100``)',
        """
        Notebook servers listen on ``127.0.0.1`` ports ``port_base`` … ``port_base + port_range - 1``.
        When all are taken, a launch answers 503 saying so. Keep the range out of the operating system's
        ephemeral ports (``/proc/sys/net/ipv4/ip_local_port_range``, 32768–60999 on Linux): there,
        outgoing connections and kernels' ZMQ sockets take ports at random. Should another process
        take the chosen port before the notebook binds it anyway, the launch retries on another port.
        """),
    _entry(
        '``pyramid_notebook.startup_timeout`` (default ``60``)',
        """
        Seconds a launch waits for a new notebook server to answer.
        """),
    _entry(
        "``pyramid_notebook.python`` (default: the web server's own interpreter)",
        """
        Python that runs the notebook daemons and kernels.
        """),
    _entry(
        '``pyramid_notebook.idle_timeout`` (default ``0``, off)',
        """
        Seconds without activity (HTTP requests, websocket traffic, kernel execution) after which a
        notebook shuts itself down cleanly: Jupyter culls idle kernels (even with a tab open, never a
        busy one) and then stops the server, using its own activity tracking
        (``MappingKernelManager.cull_idle_timeout``, ``ServerApp.shutdown_no_activity_timeout``).
        Jupyter looks once a minute, so the stop comes within a minute after the timeout.
        ``kill_timeout`` stays the hard cap. A user who comes back just launches again and finds their
        files.
        """),
    _entry(
        '``pyramid_notebook.kernel_idle_timeout`` (default ``3600``; ``0``: never)',
        """
        Seconds after which a kernel that no browser tab is connected to, and that has been idle all
        along, is shut down by Jupyter's own kernel culling (``MappingKernelManager.cull_idle_timeout``
        with ``cull_connected = False``): the kernels of shells the user opened and left, so that ten
        page hops do not keep ten idle kernels. Opening that shell again starts its kernel again (with
        its startup script); its notebook file stays. With ``idle_timeout`` set, ``idle_timeout``'s
        culling (tabs open or not) applies instead.
        """),
    _entry(
        '``pyramid_notebook.spare_kernel`` (default ``false``)',
        """
        The server keeps one kernel started ahead (with no startup script), and the next shell the
        user opens takes it: it runs that shell's startup script and is that shell's kernel, so opening
        another page's shell does not wait for a Python process to start
        (``pyramid_notebook/server/spare_kernel.py``). ``false`` (the default): every shell starts its
        own kernel, which, forked from the site's kernel zygote (``kernel_fork``), answers as soon as a
        spare would (docs/performance.rst). ``always``: the first spare starts a few seconds after the
        server (after the first shell's kernel), so that even the first other page's shell finds one,
        at the price of one more idle kernel per user (about 35 MB; culled like any kernel by
        ``kernel_idle_timeout``; with ``warm_kernel = false`` it waits for a second shell, as ``true``:
        no kernel starts before the user asks for one): for ``kernel_fork = false``. ``true``: the
        first spare starts only once the user has opened a second shell.
        """),
    _entry(
        '``pyramid_notebook.max_notebooks`` (default ``20``)',
        """
        How many users may have a notebook running at once (each is a server plus kernels, about
        150 MB). Over the limit a launch answers 503 saying so. Independent of the port range.
        """),
    _entry(
        '``pyramid_notebook.shutdown_url`` (default: the URL of the ``shutdown_notebook`` route)',
        """
        Where the notebook's *Shut down and return to site* control goes: a path on the site or a full
        URL. Without it and without such a route, the control is not shown.
        """),
    _entry(
        '``pyramid_notebook.accel_redirect`` (default empty, off)',
        """
        nginx accel mode (see `nginx in front of any WSGI server`_): the path of nginx's internal
        notebook location, ``/_pyramid_notebook/`` in the shipped ``nginx-accel.conf``. The proxy view
        then relays nothing itself: after its checks it answers an empty 200 with
        ``X-Accel-Redirect: /_pyramid_notebook/<host>:<port>/<secret>`` and nginx relays the request,
        websockets included. The site must then be reachable only through nginx.
        """),
    _entry(
        '``pyramid_notebook.fork_server`` (default ``true``)',
        """
        Start notebook servers by forking a *fork server*: one process per notebook folder and
        interpreter (``pyramid_notebook.python``) that has already imported Jupyter, so a launch takes
        a fraction of a second instead of 2–3 s of imports (``docs/performance.rst``: a cold launch in
        0.09 of a bare Jupyter start, 50 users one after another at 0.44 s each). The first launch
        spawns it (and starts the plain way meanwhile); a site that wants even its first launch fast
        calls ``registry.pyramid_notebook_manager.start_fork_server()`` at start-up. Whenever it is
        missing, dead, unresponsive or built from another interpreter or package version, launches
        start the plain way and it is restarted in the background: never a failed launch. It exits
        after six hours without a launch; ``pyramid-notebook stop-all`` stops it too. A forked server
        is an ordinary daemon (same CLI, pid file, logs, time-outs) and runs kernels as fast as a plain
        one (5.5 vs 5.9 ms per execute round trip, measured side by side). ``false``: always the plain
        ``notebook_daemon.py start``. See ``docs/design.rst``.
        """),
    _entry(
        '``pyramid_notebook.warm_kernel`` (default ``true``)',
        """
        When a notebook server starts, it starts the default notebook's kernel right away (with the
        ``startup`` script run), so the page attaches to a kernel that is already up instead of
        starting one. A kernel that dies or is culled starts again on demand as usual.
        """),
    _entry(
        "``pyramid_notebook.progress_page`` (default ``false``; the demo's ``development.ini`` sets ``true``)",
        """
        A browser's launch of a notebook that is not running yet answers at once with a small
        "Starting your notebook…" page, which moves on to the notebook as soon as it answers (a
        JavaScript poll, and a ``<meta http-equiv="refresh">`` for browsers without JavaScript), or
        shows the start-up error and the end of the notebook's log. The start continues in the web
        process in the background. ``launch_notebook`` still returns ``HTTPFound`` when the notebook
        already runs, and always for clients that do not ask for HTML (``Accept: text/html``), so
        scripts and tests that expect the redirect keep working; ``launch_notebook(..., progress=True)``
        opts one view in, ``progress=False`` out. Opt-in so that browser tests written against the old
        blocking redirect (which poll the page while it navigates) keep working unchanged; with the
        fork server a cold launch takes a quarter of a second anyway. Local backend only: the page
        keeps each start's state beside the user's pid file, so on the JupyterHub backend a launch
        answers once the server is ready, as without the page.
        """),
    _entry(
        '``pyramid_notebook.frame_ancestors`` (default: the site itself)',
        """
        Who may show notebook pages in a frame: ``'self'``, ``'none'`` or exact origins such as
        ``https://app.example.com``, separated by spaces. Notebook pages then carry
        ``Content-Security-Policy: frame-ancestors`` with exactly these (set in the notebook server's
        ``ServerApp.tornado_settings``; the proxy passes it through), and the save bridge answers these
        origins only (``'self'`` is the notebooks' own origin). The default is ``'self'``, plus the
        site's origin when notebook pages come from ``alternative_domain``: your own pages can embed the
        notebook, nobody else can. Not wider, because a page that frames the notebook can trick the user
        into typing into it (clickjacking), and the notebook is code execution as the site; ``'none'``
        if you never embed it. No wildcards or paths: the bridge compares exact origins.
        """),
    _entry(
        '``pyramid_notebook.backend`` (default ``local``)',
        """
        ``local``: notebook daemons on this machine. ``jupyterhub``: the users' servers are a
        JupyterHub's (see `Past one machine: the JupyterHub backend`_); it needs ``websocket_proxy``,
        and ``notebook_folder``, ``port_*``, ``python`` and ``max_notebooks`` then do not apply (the
        hub's spawner and ``active_server_limit`` do).
        """),
    _entry(
        '``pyramid_notebook.hub_url`` (JupyterHub backend, required)',
        """
        The hub's URL through its proxy, with its ``base_url``, e.g. ``http://127.0.0.1:8000/notebook/``.
        Its path must be the path of your ``notebook_proxy`` route: users' servers live at
        ``<path>user/<name>/`` for the browser, the site and the hub alike.
        """),
    _entry(
        '``pyramid_notebook.hub_api_token`` (JupyterHub backend, required)',
        """
        The site's service token; its service needs the scopes ``admin:users``, ``servers`` and
        ``tokens``. Never sent to a browser.
        """),
    _entry(
        '``pyramid_notebook.hub_api_url`` (JupyterHub backend, default ``<hub_url>hub/api/``)',
        """
        Where the site calls the hub's REST API, if not through its proxy.
        """),
    _entry(
        '``pyramid_notebook.audit`` (default ``true``)',
        """
        Record every cell and terminal line before it runs, and refuse what cannot be recorded (see
        ``docs/audit.rst``).
        """),
    _entry(
        '``pyramid_notebook.audit_reason`` (default ``off``)',
        """
        ``required``: a launch first asks the user why (a form POSTed with the site's CSRF token) and
        the reason goes with every record and shows on the notebook's pages; ``optional``: the field
        may stay empty; ``off``: no form.
        """),
    _entry(
        '``pyramid_notebook.audit_keep_days`` (default ``0``, keep everything)',
        """
        Days of records ``pyramid-notebook audit prune --ini INI`` keeps (run it from cron).
        """),
    _entry(
        '``pyramid_notebook.audit_log_config`` (default empty)',
        """
        An INI file (usually the site's own) whose logging configuration each notebook server applies,
        so that the ``pyramid_notebook.audit`` logger's copy of every record leaves the box; without
        it the copy goes to the server's ``notebook.stderr.log``.
        """),
    _entry(
        '``pyramid_notebook.audit_debugger`` (default ``refuse``)',
        """
        The kernel debugger (Notebook 7's and JupyterLab's debugger panel) can evaluate code and hide
        code in a breakpoint's condition. ``refuse``: its requests are refused and the kernel is shown
        without a debugger; ``record``: every debugger request that can run code (``evaluate``,
        ``setVariable``, ``setExpression``, breakpoint conditions and log points, ``dumpCell``,
        ``copyToGlobals``, ``completions``) is recorded before it is passed on. See ``docs/audit.rst``.
        """),
    _entry(
        '``pyramid_notebook.admin_principals`` (default empty)',
        """
        Principals of your security policy (``role:admin``, space separated) who may see the operator
        console at ``/notebook-admin/`` and its metrics; empty: no console. See `Operating notebooks`_.
        """),
    _entry(
        '``pyramid_notebook.metrics_token`` (default empty)',
        """
        A token a Prometheus scraper may send as ``Authorization: Bearer <token>`` to read
        ``/notebook-admin/metrics`` without logging in.
        """),
    _entry(
        '``pyramid_notebook.memory_limit`` (default empty, no limit)',
        """
        Memory each user's kernels may use, such as ``2G`` or ``400M`` (binary units). Past it an
        allocation fails with ``MemoryError`` (per-kernel resource limit) or, in a cgroup, a kernel is
        stopped; the site and other users carry on. Shown in the notebook's top bar.
        """),
    _entry(
        '``pyramid_notebook.memory_cgroup`` (default empty)',
        """
        A cgroup v2 folder delegated to the site (memory controller enabled): each user gets a group in
        it with ``memory.max`` = ``memory_limit``, shared by all their kernels. Empty, or not writable:
        per-kernel resource limits. What is enforced where: ``docs/operations.rst``.
        """),
    _entry(
        '``pyramid_notebook.compress_cache`` (default: ``<notebook_folder>/.compress-cache``)',
        """
        Folder where the site keeps brotli and gzip copies of the notebook's static files (Jupyter's
        static folders, lab extensions, ours), each made once per file version (path, inode, size and
        modification time). A browser that accepts brotli or gzip gets the copy, from disk in every
        mode (nginx sends it itself in accel mode): ``notebook_core.*.js`` is 2.5 MB as it is, 0.63 MB
        gzipped, 0.48 MB with brotli. gzip is made on the first request that accepts it (0.1 s for
        that bundle); brotli (quality 11, ten seconds of CPU for it) in a low-priority background
        thread, gzip being sent until it is there. Every answer of such a file has
        ``Vary: Accept-Encoding`` and an ETag of its own per encoding; ranges and conditional requests
        are of the bytes sent. A folder inside site-packages is refused. The folder must be writable
        by the site and, in accel mode, readable by nginx's workers (as users' files are). Old
        versions are never asked for again: delete the folder's contents at will (e.g. after a
        deploy). ``off``: static files go out uncompressed. Large relayed answers are compressed on
        the fly regardless (see "Compression and BREACH" under Security).
        """),
    _entry(
        '``pyramid_notebook.precompress`` (default ``true``)',
        """
        At site start, one background thread at the lowest CPU priority (nice 19) compresses the
        bundles a notebook page loads first (``main.*.js``, ``notebook_core.*.js`` and the chunks
        loaded with it), then every other compressible file of Notebook's static folder (13 MB: the
        chunks, styles and fonts pages load later), into ``compress_cache``, gzip then brotli (0.1 and
        3 s of CPU for the first bundles): the first click after a deploy gets brotli at once instead
        of paying a first compression. Start-up never waits for it; nothing
        happens with ``compress_cache = off`` or on the ``jupyterhub`` backend. ``false``: copies
        are made on the first requests, as for every other file.
        """),
    _entry(
        '``pyramid_notebook.warm_up`` (default ``true``)',
        """
        At site start, one background thread (daemonic, nice 19) pays what the first click after a
        start or a deploy would otherwise pay once: the web process's first imports of the launch's
        code, the notebook page's bundle list (read from Notebook's files), and the kernel's
        interpreter importing ipykernel once (its bytecode compiled and its files read into the
        system's cache). Start-up never waits for it. ``false``: the first click pays it. See
        "Cold visits at the warm floor" in ``docs/performance.rst``.
        """),
    _entry(
        '``pyramid_notebook.disabled_extensions`` (default empty)',
        """
        Lab extensions (``@jupyterlab/pdf-extension``) or single plugins
        (``@jupyterlab/notebook-extension:toc``), separated by spaces or commas, left out of the
        notebook's pages (Jupyter's ``page_config`` ``disabledExtensions``; an installed lab
        extension named here is not even fetched). For a page that loads only what your users need.
        Empty by default: leaving out 21 extensions and plugins a notebook page can spare did not
        cut a warm visit measurably (1.01 ×; a default needed 10 %): Notebook's core bundle is most
        of the page's work (``docs/performance.rst``). The ``local`` backend; a ``jupyterhub``
        deployment sets it in its own configuration.
        """),
    _entry(
        '``pyramid_notebook.recipes_folder`` (default: ``<notebook_folder>/.recipes``)',
        """
        The team's recipe library: a git repository the site creates and commits to (one commit per
        publish or delete, authored by the site user), outside every user's folder. Every user's file
        browser shows its latest versions as the read-only ``team-recipes/`` folder. Several web nodes
        share it as they share the notebook folder. See ``docs/sharing.rst``.
        """),
    _entry(
        '``pyramid_notebook.recipe_principals`` (default: the ``shell_principals``)',
        """
        Principals who may publish recipes (``POST /notebook/recipes``, the notebook's *Publish to team
        recipes…* command). Shell and recipe principals may read recipes and open them in their shell,
        admins (``admin_principals``) may read them; a recipe's first author or an admin may delete it.
        """),
    _entry(
        '``pyramid_notebook.recipe_strip_outputs`` (default ``false``)',
        """
        ``true``: publish notebooks without their outputs (kept by default: a recipe shows what it gives).
        """),
    _entry(
        '``pyramid_notebook.recipe_max_bytes`` (default ``20M``)',
        """
        The largest notebook the library takes (``20M``, ``500K`` or bytes); a larger one is refused
        with 400.
        """),
) + tuple(_entry(term, doc) for term, doc in SHARE_SETTINGS + KERNEL_SETTINGS + AUDIT_REVIEW_SETTINGS)  # 31, 33, 32

def setting_names() -> frozenset:
    """Every known setting name, without ``pyramid_notebook.``."""
    return frozenset(name for setting in SETTINGS for name in setting.names)
