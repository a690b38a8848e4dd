"""What a kernel zygote imports before it forks kernels: one rule for the site, the servers and the zygotes.

The notebook server's provisioner (``server/kernel_provisioner.py``) asks for a zygote with these
lists, and so does the site's warm-up at start (``web/warmup.py``, through the backend), so both
name the same zygote: the fork server keeps one per :func:`site_preload`.
"""
import ast

#: What every IPython kernel imports (ipykernel's launcher, its kernel, shell and output streams).
BASE_PRELOAD = ("IPython", "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.iostream",
                "ipykernel.comm", "zmq.eventloop.zmqstream", "jupyter_client.session", "pyramid_notebook.server.limit_exec",
                # ...and what its start imports: the debugger (debugpy: some 100 modules), history, help, psutil.
                "ipykernel.debugger", "debugpy", "sqlite3", "pdb", "pydoc", "psutil")
#: Imported as well when the startup uses pshell (``pyramid_notebook.core.pshell``): Pyramid's bootstrap.
PSHELL_PRELOAD = ("pyramid.scripts.pshell", "pyramid.paster", "plaster.loaders")


def found_in_startup(startup: str) -> list:
    """Absolute module names the startup script imports at its top level (best effort, never raises)."""
    try:
        tree = ast.parse(startup or "")
    except (SyntaxError, ValueError):
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append(node.module)
    if "pyramid_notebook.core.pshell" in names:
        names.extend(PSHELL_PRELOAD)
    return names


def preload_modules(context: dict) -> list:
    """The modules a zygote for ``context`` imports: :data:`BASE_PRELOAD`, the site's setting, the startup's."""
    names = list(BASE_PRELOAD) + list(context.get("kernel_preload") or []) + found_in_startup(context.get("startup"))
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n))


def pshell_config(startup: str):
    """``(config_uri, folder)`` of the startup's ``load_pshell`` call (see ``core/startup.py``), or None."""
    try:
        tree = ast.parse(startup or "")
    except (SyntaxError, ValueError):
        return None
    folder = ""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        constants = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if name == "change_directory" and constants:
            folder = constants[0]
        elif name == "load_pshell" and constants:
            return constants[-1], folder
    return None


def site_preload(context: dict) -> tuple:
    """``(modules, pshell)`` of the site's zygote for ``context``: :data:`BASE_PRELOAD`, the site's
    ``kernel_preload``, Pyramid's bootstrap for a pshell startup, and that startup's
    ``[config_uri, folder]`` (the zygote finds the site's own modules from it). What else a startup
    imports at its top level is left to the kernel: every shell of a site then shares one zygote.
    """
    pshell = pshell_config(context.get("startup") or "")
    names = list(BASE_PRELOAD) + list(context.get("kernel_preload") or []) + (list(PSHELL_PRELOAD) if pshell else [])
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n)), (list(pshell) if pshell else None)
