"""What ``pshell <INI>`` gives, for a notebook kernel and for its greeting.

:func:`load_pshell` runs INSIDE the kernel, from the startup script that
:func:`pyramid_notebook.core.startup.make_startup` writes: it uses Pyramid's own
:class:`~pyramid.scripts.pshell.PShellCommand`, so the kernel gets exactly what ``pshell``
gives (``app``, ``root``, ``registry``, ``request``, ``root_factory``, the INI's
``[pshell]`` variables, and whatever its ``setup`` hook adds, such as ``tm`` and
``dbsession`` in explicit-mode ``pyramid_tm`` sites). :func:`pshell_greeting` runs in the
web process and lists those names for the notebook's greeting, like pshell's banner.
"""
import ast
import atexit
import inspect
import sys
import textwrap
import traceback

#: pshell's own descriptions of its environment (``pyramid/scripts/pshell.py``).
ENVIRONMENT_HELP = {
    "app": "The WSGI application.",
    "registry": "Active Pyramid registry.",
    "request": "Active request object.",
    "root": "Root of the default resource tree.",
    "root_factory": "Default root factory used to create `root`.",
}


def _command(config_uri):
    from pyramid.scripts.pshell import PShellCommand

    command = PShellCommand(["pshell", config_uri], quiet=True)
    loader = command.get_config_loader(config_uri)
    defaults = {"__script__": "pshell"}
    command.pshell_file_config(loader, defaults)
    return command, defaults


def load_pshell(namespace: dict, config_uri: str) -> bool:
    """Fill ``namespace`` (the kernel's) the way ``pshell config_uri`` fills its shell.

    The ``[pshell]`` setup hook's context (a generator hook's ``yield``) stays open while the
    kernel runs, and is closed with the bootstrap's ``closer`` when it exits. When the
    bootstrap or the hook raises, the names set so far stay and the traceback is printed in
    the output of the first cell the user runs: never a silently broken kernel.
    :return: whether everything was set up.
    """
    env = {}
    try:
        command, defaults = _command(config_uri)
        command.env = env = command.bootstrap(config_uri, options=defaults)
        atexit.register(env.pop("closer"))
        setup = command.setup_env()
        setup.__enter__()
        atexit.register(setup.__exit__, None, None, None)
        namespace.update(env)
        namespace["pshell_help"] = command.help
        return True
    except Exception:
        namespace.update({k: v for k, v in env.items() if k != "closer"})
        _show_in_first_cell(f"Setting up the shell from {config_uri} failed, as `pshell {config_uri}` would:\n"
                            + traceback.format_exc())
        return False


def _show_in_first_cell(text: str) -> None:
    """Print ``text`` to stderr in the output of the next cell run (or now, outside IPython)."""
    try:
        ip = get_ipython()  # noqa: F821  a builtin inside IPython kernels
    except NameError:
        print(text, file=sys.stderr)
        return

    def show(*args):
        ip.events.unregister("pre_run_cell", show)
        print(text, file=sys.stderr)

    ip.events.register("pre_run_cell", show)


def _setup_names(setup) -> list:
    """Names a setup hook assigns as ``env["name"] = ...`` (read from its source, not run)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(setup)))
        function = tree.body[0]
        env_name = function.args.args[0].arg
    except Exception:  # no source, a class, a lambda...: the greeting just names the hook
        return []
    names = []
    for node in ast.walk(function):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                    and target.value.id == env_name and isinstance(target.slice, ast.Constant)
                    and isinstance(target.slice.value, str)):
                names.append(target.slice.value)
    return list(dict.fromkeys(names))


def pshell_greeting(config_uri: str) -> str:
    """Markdown listing what the INI's ``[pshell]`` section adds to pshell's environment.

    Reads the section (no bootstrap): its variables with their dotted names, and the names
    its ``setup`` hook assigns. Empty when there is no section or it cannot be read.
    """
    try:
        command, _ = _command(config_uri)
    except Exception:
        return ""
    lines = [f"* **root_factory** - {ENVIRONMENT_HELP['root_factory']}"]
    if command.setup:
        try:
            setup = command.resolver.maybe_resolve(command.setup)
        except Exception:
            setup = None
        for name in _setup_names(setup) if setup is not None else []:
            lines.append(f"* **{name}** - set up by `{command.setup}`")
        lines.append(f"* the `[pshell]` setup hook `{command.setup}` has run; **pshell_help** is pshell's banner")
    for name in sorted(command.object_help):
        lines.append(f"* **{name}** - `{command.object_help[name]}`")
    return "\n".join(lines)
