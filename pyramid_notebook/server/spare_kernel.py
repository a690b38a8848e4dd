"""A spare kernel, so that opening another page's shell does not wait for a kernel to start.

Starting a kernel (a Python process importing IPython) is most of what opening another
page's shell in a running server costs (:mod:`pyramid_notebook.server.shells`). A few seconds
after the server starts (after the first shell's kernel), the server keeps one kernel started
ahead, with no startup script (``PYRAMID_NOTEBOOK_SPARE_KERNEL`` in its environment tells the profile's startup
file to run nothing). The next shell takes it: its environment is changed to the shell's
notebook (so a restart from the notebook runs that shell's startup script, as for any kernel),
the shell's startup script runs in it, and the session is made with it; another spare starts a
few seconds later, when the page has loaded. The spare is culled like any kernel (``kernel_idle_timeout``); the next shell then
starts its kernel the usual way and the spare comes back after it.

Off by default since kernels are forked from the site's zygote (issue 33): a shell whose kernel is
forked on the click answers as soon as one that takes a spare (0.19 against 0.21 s, docs/performance.rst),
and the spare cost one more idle kernel per user. ``always``: even the first other page's shell finds a
spare, at the price of that kernel until it is culled. ``true`` (``pyramid_notebook.spare_kernel`` or the
context's ``spare_kernel``) starts the first spare only once the user opened a second shell, so a user
who never does never has one; ``false`` (the default) turns it off. The server reads
``PyramidNotebook.spare_kernel`` from its Jupyter config.
"""
import asyncio
import os

from pyramid_notebook.server.kernel_start import ENTER_FOLDER

#: Environment variable marking the spare kernel: the profile's startup file runs nothing.
SPARE_ENV = "PYRAMID_NOTEBOOK_SPARE_KERNEL"
#: Seconds after a shell opened before the next spare starts: the shell's page loads meanwhile.
REFILL_DELAY = 3.0
#: ``spare_kernel`` of a context that does not say (``NotebookSettings.spare_kernel``'s default).
DEFAULT_SPARE = False
#: Seconds a shell waits for the spare to be ready and run its startup script.
CLAIM_TIMEOUT = 60.0


#: Seconds after the server's start before the first spare starts with ``spare_kernel = always``:
#: the first shell's kernel and page come first.
START_DELAY = 5.0


def policy(serverapp):
    """``PyramidNotebook.spare_kernel`` of the server's config: ``"always"``, ``True`` or ``False`` (default)."""
    section = serverapp.config.get("PyramidNotebook") or {}
    value = section.get("spare_kernel", DEFAULT_SPARE)
    return "always" if value == "always" else bool(value)


def enabled(serverapp) -> bool:
    """True unless the spare kernel is turned off."""
    return bool(policy(serverapp))


class SpareKernel:
    """At most one spare kernel of one Jupyter server."""

    def __init__(self, serverapp):
        self.serverapp = serverapp
        self.kernel_id = None
        self._task = None      # the filler: sleeping, then starting
        self._starting = False

    @property
    def _kernels(self):
        return self.serverapp.kernel_manager

    def fill_later(self, delay: float = REFILL_DELAY) -> None:
        """Start a spare after ``delay`` seconds unless one exists or is on its way."""
        if not enabled(self.serverapp) or (self._task is not None and not self._task.done()):
            return
        if self.kernel_id and self.kernel_id in self._kernels:
            return
        self._task = asyncio.ensure_future(self._fill(delay))

    async def _fill(self, delay):
        await asyncio.sleep(delay)
        self._starting = True
        try:
            env = {**os.environ, "JPY_SESSION_NAME": "", SPARE_ENV: "1"}
            kernel_id = await self._kernels.start_kernel(kernel_name=self._kernels.default_kernel_name,
                                                         path="", env=env)
            # Answering before it counts: a shell that takes it then waits for nothing.
            client = self._kernels.get_kernel(kernel_id).client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=CLAIM_TIMEOUT)
            finally:
                client.stop_channels()
            # It answered: idle. Jupyter's own state (from the kernel's IOPub status messages) can
            # miss that first answer when its subscription joins late, and say "starting" until the
            # kernel's next activity, in api/kernels and the operator console.
            kernel = self._kernels.get_kernel(kernel_id)
            if getattr(kernel, "execution_state", None) == "starting":
                kernel.execution_state = "idle"
            self.kernel_id = kernel_id
        except Exception:  # the next shell starts its kernel the usual way
            self.serverapp.log.exception("Could not start a spare kernel")
        finally:
            self._starting = False

    async def _check(self, client, path, msg_id):
        """Log a startup script that failed in the claimed kernel (as a failing startup file, it runs on)."""
        try:
            deadline = asyncio.get_running_loop().time() + CLAIM_TIMEOUT
            while asyncio.get_running_loop().time() < deadline:
                reply = await client.get_shell_msg(timeout=CLAIM_TIMEOUT)
                if reply["parent_header"].get("msg_id") == msg_id:
                    if reply["content"].get("status") != "ok":
                        self.serverapp.log.warning("The startup script of %s failed in its kernel: %s", path,
                                                   reply["content"].get("evalue"))
                    return
        except Exception as e:  # noqa: BLE001 - only a log line is at stake
            self.serverapp.log.warning("No answer from the kernel of %s to its startup script: %r", path, e)
        finally:
            client.stop_channels()

    async def claim(self, path: str, script: str):
        """The spare kernel's id, now running ``script`` as notebook ``path``'s kernel; None if there is none."""
        if self._starting and self._task is not None:
            await asyncio.shield(self._task)  # nearly started: still sooner than a new one
        kernel_id, self.kernel_id = self.kernel_id, None
        if not kernel_id or kernel_id not in self._kernels:
            return None
        kernel = self._kernels.get_kernel(kernel_id)
        # A restart from the notebook runs this notebook's startup script, as for any kernel.
        kernel.update_env(env={"JPY_SESSION_NAME": path, SPARE_ENV: ""})
        code = (f"import os as _pn_os\n_pn_os.environ['JPY_SESSION_NAME'] = {path!r}\n"
                f"_pn_os.environ.pop({SPARE_ENV!r}, None)\ndel _pn_os\n")
        run = (f"exec(compile(open({script!r}, encoding='utf-8').read(), {script!r}, 'exec'))"
               if os.path.isfile(script) else "pass")
        # Then, as any kernel (server/kernel_start.py), out of its private folder into the notebook's.
        code += f"try:\n    {run}\nfinally:\n    exec({ENTER_FOLDER!r})\n"
        # Sent, not waited for: the kernel runs its shell messages in order, so the page's first
        # cell runs after the startup script, as after a startup file (waiting here costs seconds
        # of client handshakes on a busy machine).
        client = kernel.client()
        client.start_channels()
        msg_id = client.execute(code, silent=True, store_history=False, allow_stdin=False)
        asyncio.ensure_future(self._check(client, path, msg_id))
        return kernel_id
