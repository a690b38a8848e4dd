"""The package's layout: the import contract, no cycles, module sizes, and every name that must not break."""
import ast
import importlib
import os
import shutil
import subprocess
import sys

import pytest

from pyramid_notebook.backends.local.forkclient import ForkServerClient, stop_all
from pyramid_notebook.core import paths
from pyramid_notebook.core.forkprotocol import FOLDER_NAME, fingerprint
from tests.helpers import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "pyramid_notebook")
MAX_LINES = 400


def _modules(folder):
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [s for s in subfolders if s != "__pycache__"]
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(parent, name)


def test_import_contract_holds():
    """The layers, the process boundaries and acyclic folders (.importlinter) are kept."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    r = subprocess.run([lint, "--config", os.path.join(ROOT, ".importlinter")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _imports(path):
    """Every pyramid_notebook module ``path`` imports, function-level imports included."""
    name = _module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if importlib.util.find_spec(base) and _is_module(candidate) else base)
    return {m for m in found if m.startswith("pyramid_notebook") and m != name}


def _is_module(dotted):
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def test_no_import_cycle_between_modules():
    """An AST scan of every import (function-level too): the module graph has no cycle.

    The compatibility re-exports (``views``, ``notebookmanager``...) are leaves over the real modules.
    """
    graph = {_module_name(p): _imports(p) for p in _modules(PACKAGE)}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            # importing a.b.c runs a and a.b first: package __init__ files are not edges of the cycle check
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target in graph and target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("folder", ["pyramid_notebook", "bench"])
def test_no_module_over_400_lines(folder):
    long = {os.path.relpath(p, ROOT): n for p in _modules(os.path.join(ROOT, folder))
            if (n := sum(1 for _ in open(p, encoding="utf-8"))) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("dotted", [
    "pyramid_notebook.views.launch_notebook", "pyramid_notebook.views.shutdown_notebook",
    "pyramid_notebook.views.notebook_proxy", "pyramid_notebook.views.notebook_url",
    "pyramid_notebook.startup.make_startup", "pyramid_notebook.startup.add_script",
    "pyramid_notebook.startup.add_greeting", "pyramid_notebook.startup.include_sqlalchemy_models",
    "pyramid_notebook.notebookmanager.NotebookManager", "pyramid_notebook.uwsgi.serve_websocket",
    "pyramid_notebook.utils.make_dict_hash", "pyramid_notebook.utils.change_directory",
    "pyramid_notebook.utils.route_to_alt_domain", "pyramid_notebook.asgi.serve_websocket",
    "pyramid_notebook.asgi.from_ini", "pyramid_notebook.asgi.make_asgi_app", "pyramid_notebook.asgi.serve_paste",
    "pyramid_notebook.hubspawn.pre_spawn_hook", "pyramid_notebook.hubspawn.SINGLEUSER_CMD",
    "pyramid_notebook.contents.read_notebook", "pyramid_notebook.intent.require_intent",
    "pyramid_notebook.badinput.bad_url_view", "pyramid_notebook.cli.main",
])
def test_the_original_dotted_names_still_resolve(dotted):
    """Sites, INI files and every existing context file's startup script use these names."""
    module, _, name = dotted.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name)) or name.isupper()


def test_the_entry_points_resolve():
    from importlib.metadata import distribution

    names = {(ep.group, ep.name): ep for ep in distribution("pyramid_notebook").entry_points}
    for key in [("console_scripts", "pyramid-notebook"), ("paste.server_runner", "uvicorn"),
                ("paste.app_factory", "demo"), ("paste.server_runner", "demo_server"),
                ("jupyter_client.kernel_provisioners", "pyramid-notebook-zygote")]:
        assert callable(names[key].load()), key


def test_the_daemon_script_keeps_its_path():
    assert paths.DAEMON_SCRIPT == os.path.join(PACKAGE, "server", "notebook_daemon.py")
    assert os.path.isfile(paths.DAEMON_SCRIPT) and os.path.isfile(paths.FORKSERVER_SCRIPT)


def test_the_fork_server_fingerprint_covers_every_folder(tmp_path, monkeypatch):
    """A change to any module the fork server or its children may import makes it stale."""
    copy = tmp_path / "pyramid_notebook"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "labextensions"))
    monkeypatch.setattr(paths, "PACKAGE_FOLDER", str(copy))
    before = fingerprint(sys.executable)["files"]
    for module in ("core/context.py", "backends/local/manager.py", "server/config.py", "forkserver/process.py"):
        target = copy / module
        os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
        after = fingerprint(sys.executable)["files"]
        assert after != before, module
        before = after


def test_a_fork_server_of_the_earlier_layout_is_recognised_and_stopped(tmp_path):
    """After an upgrade, a fork server started as ``python .../pyramid_notebook/forkserver.py serve FOLDER``
    (the flat layout's script) is still found by ``stop-all`` and stopped by its pid."""
    notebook_folder = tmp_path / "notebooks"
    folder = notebook_folder / FOLDER_NAME
    folder.mkdir(parents=True)
    old = tmp_path / "old" / "pyramid_notebook" / "forkserver.py"
    old.parent.mkdir(parents=True)
    old.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    client = ForkServerClient(str(notebook_folder), sys.executable)
    proc = subprocess.Popen([sys.executable, str(old), "serve", client.folder], start_new_session=True)
    try:
        with open(client.pid_file, "w") as f:
            f.write(f"{proc.pid}\n")
        wait_for(lambda: open(f"/proc/{proc.pid}/cmdline", "rb").read().count(b"\0") >= 3, timeout=10)
        assert stop_all(str(notebook_folder)) == 1
        assert proc.wait(timeout=10) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
