"""What a fresh site's first click pays once, paid at start in the background (issue 34, web/warmup.py):
real demo sites, a real fork server and a real notebook launch."""
import json
import os
import subprocess
import sys
import textwrap
import threading

from pyramid_notebook.web import warmup
from tests.helpers import wait_for

#: A fresh interpreter builds the demo site, waits for its warm-up (or not), then launches a notebook
#: through it and prints the modules that launch imported in the web process.
LAUNCH = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    from pyramid.paster import get_app
    from tests.helpers import CLICK, WSGIServerThread, login

    app = get_app({ini!r}, "main")
    state = getattr(app.registry, "pyramid_notebook_warmup", None)
    if state is not None:
        assert state.wait(240), "the warm-up did not end"
    server = WSGIServerThread(app).__enter__()
    session = login(server.url)
    before = set(sys.modules)
    try:
        page = session.get(server.url + "/shell1", headers=dict(CLICK, Accept="text/html"), timeout=120)
        assert page.status_code == 200 and "jupyter-config-data" in page.text, page.text[:300]
        print(json.dumps({{"new": sorted(set(sys.modules) - before),
                          "timings": state.timings if state else None, "errors": state.errors if state else None}}))
    finally:
        server.manager.stop_notebook("user")
        server.__exit__(None, None, None)
""")


def first_launch_imports(tmp_path, notebook_folder, **settings):
    from tests.conftest import write_demo_ini

    ini = write_demo_ini(tmp_path, notebook_folder, **settings)
    script = tmp_path / "launch.py"
    script.write_text(LAUNCH.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ini=ini))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours(modules):
    """The modules of this package, Pyramid and the launch's optional helpers among ``modules``."""
    return {m for m in modules if m.split(".")[0] in ("pyramid_notebook", "pyramid", "dulwich", "transaction", "code")}


def test_after_the_warm_up_a_first_launch_imports_nothing_more(tmp_path, notebook_folder):
    warmed = first_launch_imports(tmp_path, notebook_folder, **{"pyramid_notebook.warm_up": "true"})
    assert warmed["errors"] == {}, warmed["errors"]
    assert set(warmed["timings"]) == {"imports", "recipe library", "bundle list", "page templates", "kernel interpreter",
                                     "kernel zygote"}
    assert not ours(warmed["new"]), ours(warmed["new"])
    # The control: without the warm-up, the same first launch imports them (the test above would see it).
    os.rename(notebook_folder, notebook_folder + "-warm")
    os.makedirs(notebook_folder)
    cold = first_launch_imports(tmp_path, notebook_folder, **{"pyramid_notebook.warm_up": "false"})
    assert cold["timings"] is None
    assert {"dulwich.repo", "pyramid_notebook.core.pshell"} <= ours(cold["new"]), cold["new"]


def test_the_warm_up_runs_at_start_without_a_request(make_demo_server, notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.fork_server": "true", "pyramid_notebook.warm_up": "true"})
    state = server.app.registry.pyramid_notebook_warmup
    assert state.thread.daemon and state.thread.name == "pyramid_notebook warm-up"
    assert state.wait(240), "the warm-up did not end"
    assert state.errors == {} and list(state.timings) == [name for name, _ in warmup.steps(server.app.registry)]
    # Its observable effects, no request made: the kernel's interpreter imported ipykernel (a real
    # process: it took time), the recipe library exists, the bundle list is read, and the fork server,
    # started beside it, answers.
    assert state.timings["kernel interpreter"] > 0.05, state.timings
    assert os.path.isdir(os.path.join(notebook_folder, ".recipes", ".git"))
    from pyramid_notebook.web.preload import notebook_bundles

    assert notebook_bundles(server.app.registry)
    wait_for(lambda: server.manager.fork_server.ping(), timeout=120, message="the fork server")
    assert server.manager.list_notebooks() == [] or not any(r.get("alive") for r in server.manager.list_notebooks())
    # The site's kernel zygote is forked (issue 33): the first launch's kernel comes from it.
    import psutil

    from pyramid_notebook.core.process import read_pid_file
    from tests.helpers import login
    from tests.test_private_kernels import launch, start_kernel
    from tests.test_site_zygote import kernel_process, title

    fork_server = psutil.Process(read_pid_file(server.manager.fork_server.pid_file))
    # Forked as the warm-up's last step: it takes its title a moment later (a loaded machine: longer).
    (zygote,) = wait_for(lambda: [p for p in fork_server.children() if "kernel zygote (site" in title(p)],
                         timeout=60, message="the site's zygote, a child of the fork server")
    s = login(server.url)
    launch(s, server.url)
    assert kernel_process(start_kernel(s, server.url, "first.ipynb")).parent().pid == zygote.pid


def test_no_warm_up_for_a_site_that_turned_it_off(make_demo_server):
    before = {t.name for t in threading.enumerate()}
    server = make_demo_server(**{"pyramid_notebook.warm_up": "false"})
    assert getattr(server.app.registry, "pyramid_notebook_warmup", None) is None
    assert "pyramid_notebook warm-up" not in {t.name for t in threading.enumerate()} - before


def test_a_failing_step_is_recorded_and_never_stops_the_site(make_demo_server, monkeypatch):
    monkeypatch.setattr(warmup, "KERNEL_IMPORTS", ("no_such_module_for_the_warm_up",))
    server = make_demo_server(**{"pyramid_notebook.warm_up": "true"})
    state = server.app.registry.pyramid_notebook_warmup
    assert state.wait(240)
    assert set(state.errors) == {"kernel interpreter"} and "no_such_module_for_the_warm_up" in \
        state.errors["kernel interpreter"]
    assert set(state.timings) == {"imports", "recipe library", "bundle list", "page templates", "kernel interpreter",
                                     "kernel zygote"}


def test_disabled_extensions_are_left_out_of_the_notebook_page(make_demo_server):
    """``pyramid_notebook.disabled_extensions``: the page config names them; an installed lab
    extension named there is not even fetched (no longer among the federated ones)."""
    import re

    from tests.helpers import CLICK, login

    names = ["@jupyter-notebook/lab-extension", "@jupyterlab/pdf-extension", "@jupyterlab/notebook-extension:toc"]
    server = make_demo_server(**{"pyramid_notebook.disabled_extensions": ", ".join(names)})
    page = login(server.url).get(server.url + "/shell1", headers=dict(CLICK, Accept="text/html"), timeout=120)
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page.text, re.S).group(1))
    assert set(names) | {"nbdime-jupyterlab"} <= set(config["disabledExtensions"]), config["disabledExtensions"]
    federated = {ext["name"] for ext in config["federated_extensions"]}
    assert "@jupyter-notebook/lab-extension" not in federated and "@jupyter-server/resource-usage" in federated
    # Without the setting the page has that extension (the assertion above is not vacuous).
    plain = make_demo_server()
    page = login(plain.url).get(plain.url + "/shell1", headers=dict(CLICK, Accept="text/html"), timeout=120)
    assert '"@jupyter-notebook/lab-extension"' in page.text


def test_the_settings_parse_and_refuse_what_is_not_an_extension_name():
    import pytest
    from pyramid.exceptions import ConfigurationError

    from pyramid_notebook.core.settings import parse_settings

    base = {"pyramid_notebook.notebook_folder": "/tmp/x"}
    parsed = parse_settings(dict(base, **{"pyramid_notebook.disabled_extensions":
                                          "@jupyterlab/pdf-extension, @jupyterlab/notebook-extension:toc\n x"}))
    assert parsed.disabled_extensions == ("@jupyterlab/pdf-extension", "@jupyterlab/notebook-extension:toc", "x")
    assert parsed.warm_up is True and parse_settings(dict(base, **{"pyramid_notebook.warm_up": "off"})).warm_up is False
    assert parse_settings(base).disabled_extensions == ()
    for bad in ('"><script>', "a;b"):
        with pytest.raises(ConfigurationError, match="disabled_extensions"):
            parse_settings(dict(base, **{"pyramid_notebook.disabled_extensions": bad}))
    with pytest.raises(ConfigurationError, match="warm_up"):
        parse_settings(dict(base, **{"pyramid_notebook.warm_up": "sometimes"}))
