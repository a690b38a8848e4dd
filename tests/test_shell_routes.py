"""The INI-only set-up (pyramid_notebook.web.routes): routes before a catch-all, user ids of any
type, missing settings as a 503 page, and pshell's namespace (a raising setup hook included)."""
import logging
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
import requests
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook.core import startup
from tests.helpers import WSGIServerThread, random_port_base, stop_all_notebooks

UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
#: X-User header -> (authenticated_userid, principals).
USERS = {
    "int": (7, ["role:editor"]),
    "uuid": (UUID, ["role:editor"]),
    "str": ("alice@example.com", ["role:editor"]),
    "basic": (8, ["role:basic"]),
    "empty": ("", ["role:editor"]),  # a policy that grants the role but names nobody
}


class HeaderPolicy:
    """Who you are is the X-User header (tests only)."""

    def identity(self, request):
        return USERS.get(request.headers.get("X-User", ""))

    def authenticated_userid(self, request):
        identity = self.identity(request)
        return identity[0] if identity else None

    def permits(self, request, context, permission):
        identity = self.identity(request)
        principals = [Everyone] + ([Authenticated] + identity[1] if identity else [])
        return ACLHelper().permits(context, principals, permission)


def make_app(settings):
    """A site whose catch-all route is registered before the include."""
    config = Configurator(settings=dict({"pyramid_notebook.shell_principals": "role:editor"}, **settings))
    config.set_security_policy(HeaderPolicy())
    config.add_route("page", "/{path:.*}")  # a catch-all, registered first
    config.add_view(lambda request: Response("a page of the site"), route_name="page")
    config.include("pyramid_notebook")
    return config.make_wsgi_app()


def get(app, path, user=None, **headers):
    if user:
        headers["X-User"] = user
    return Request.blank(path, headers=headers).get_response(app)


def test_missing_settings_answer_503_naming_them_and_the_site_works(caplog):
    with caplog.at_level(logging.WARNING, logger="pyramid_notebook"):
        app = make_app({})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "notebook_folder" in r.getMessage()]
    assert len(warnings) == 1, "one warning at start"
    # (The team recipes' and the shares' routes, /notebook/recipes... and /notebook/share..., go first
    # of all: web/recipes.py, web/shares.py.)
    names = [route.name for route in app.routes_mapper.get_routes()
             if not route.name.startswith(("notebook_recipe", "notebook_share"))]
    assert names[:3] == ["notebook_shell", "shutdown_notebook", "notebook_proxy"], names
    for path in ("/notebook/shell", "/notebook/shutdown", "/notebook/tree", "/notebook/api/kernels", "/notebook/shares",
                 "/notebook/shared/x/api/contents"):
        response = get(app, path, "int")
        assert response.status_int == 503, (path, response.status)
        assert "pyramid_notebook.notebook_folder is missing" in response.text
        assert "Traceback" not in response.text
    assert get(app, "/anything/else", "int").text == "a page of the site"
    assert get(app, "/notebook/shell").status_int == 403, "the ACL first: anonymous never learns more"
    assert get(app, "/notebook/shell", "basic").status_int == 403


def test_missing_hub_settings_answer_503():
    app = make_app({"pyramid_notebook.backend": "jupyterhub",
                    "pyramid_notebook.websocket_proxy": "pyramid_notebook.asgi.serve_websocket"})
    response = get(app, "/notebook/shell", "int")
    assert response.status_int == 503 and "pyramid_notebook.hub_url is missing" in response.text


@pytest.mark.parametrize("settings, named", [
    ({"pyramid_notebook.port_base": "soon"}, "pyramid_notebook.port_base"),
    ({"pyramid_notebook.backend": "kubernetes"}, "pyramid_notebook.backend"),
    ({"pyramid_notebook.config_file": "/no/such/site.ini"}, "pyramid_notebook.config_file"),
])
def test_wrong_values_still_fail_fast_even_with_a_setting_missing(settings, named):
    with pytest.raises(ConfigurationError, match=named):
        make_app(settings)


def test_without_shell_principals_no_routes_are_added(tmp_path):
    config = Configurator(settings={"pyramid_notebook.notebook_folder": str(tmp_path)})
    config.include("pyramid_notebook")
    app = config.make_wsgi_app()
    assert not [r for r in app.routes_mapper.get_routes() if r.name.startswith(("notebook", "shutdown"))]


@pytest.fixture
def shell_site(tmp_path):
    folder = tmp_path / "notebooks"
    app = make_app({"pyramid_notebook.notebook_folder": str(folder), "pyramid_notebook.port_base":
                    str(random_port_base()), "pyramid_notebook.port_range": "20",
                    "pyramid_notebook.fork_server": "false", "pyramid_notebook.warm_kernel": "false"})
    with WSGIServerThread(app) as server:
        try:
            yield server
        finally:
            stop_all_notebooks(str(folder))


def test_user_ids_of_any_type_get_their_own_notebook(shell_site):
    for user, name in (("int", "7"), ("uuid", str(UUID)), ("str", "alice@example.com")):
        r = requests.get(shell_site.url + "/notebook/shell", headers={"X-User": user}, allow_redirects=False)
        assert r.status_code == 302, (user, r.text)
        assert "/notebook/notebooks/" in r.headers["Location"]
        status = shell_site.manager.get_notebook_status(name)
        assert status and status["http_port"], (user, name)
        assert requests.get(r.headers["Location"], headers={"X-User": user}).status_code == 200
    # Shutdown goes back to the site's root.
    r = requests.get(shell_site.url + "/notebook/shutdown", allow_redirects=False,
                     headers={"X-User": "int", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"})
    assert r.status_code == 302 and r.headers["Location"] == shell_site.url + "/"
    assert not shell_site.manager.get_notebook_status("7")


def test_an_empty_user_id_is_403_saying_what_is_wrong(shell_site):
    r = requests.get(shell_site.url + "/notebook/shell", headers={"X-User": "empty"}, allow_redirects=False)
    assert r.status_code == 403
    assert "authenticated_userid is empty" in r.text
    state = os.path.join(shell_site.manager.notebook_folder, ".state")
    # No user's state folder (the site's own, .site, holds the sharing grants' database from start).
    assert not [name for name in (os.listdir(state) if os.path.isdir(state) else []) if name != ".site"]


SITE_MODULE = '''
import math
from pyramid.config import Configurator


def main(global_config, **settings):
    return Configurator(settings=settings).make_wsgi_app()


def setup(env):
    """Adds x."""
    env["x"] = 42


def raising_setup(env):
    env["half"] = "set before the error"
    raise RuntimeError("the database is down")
'''

INI = '''
[app:main]
use = call:tinysite:main

[pshell]
setup = tinysite.{setup}
m = math
'''

RUN_IN_IPYTHON = '''
import json, sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
# What IPython does with a profile's startup file: run it in the user's namespace.
ip.safe_execfile(sys.argv[1], ip.user_ns, raise_exceptions=False)
print("@@@", file=sys.stderr, flush=True)
first = ip.run_cell("1")
print("@@@")
print("@@@", file=sys.stderr, flush=True)
ip.run_cell("2")
names = {k: repr(ip.user_ns[k]) for k in ("app", "registry", "request", "root", "root_factory", "x", "m", "half",
                                          "pshell_help") if k in ip.user_ns}
print("@@@" + json.dumps(names))
'''


def run_startup_in_ipython(tmp_path, setup, monkeypatch):
    (tmp_path / "tinysite.py").write_text(SITE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))  # the web process imports its own site
    ini = tmp_path / "site.ini"
    ini.write_text(INI.format(setup=setup))
    nb = {}
    startup.make_startup(nb, str(ini))
    script = tmp_path / "startup.py"
    script.write_text(nb["startup"])
    runner = tmp_path / "run.py"
    runner.write_text(RUN_IN_IPYTHON)
    result = subprocess.run([sys.executable, str(runner), str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    return nb, result


def test_the_kernel_gets_what_pshell_gives(tmp_path, monkeypatch):
    import json

    nb, result = run_startup_in_ipython(tmp_path, "setup", monkeypatch)
    first, second, names = result.stdout.split("@@@")
    names = json.loads(names)
    for name in ("app", "registry", "request", "root", "root_factory", "x", "m", "pshell_help"):
        assert name in names, name
    assert names["x"] == "42" and "module 'math'" in names["m"]
    assert "Custom Variables" in names["pshell_help"] and "\\n  x " in names["pshell_help"], "pshell's banner"
    assert "Traceback" not in result.stderr
    # The greeting lists them like pshell's banner.
    for text in ("**app**", "**root_factory**", "**x** - set up by `tinysite.setup`", "**m** - `math`"):
        assert text in nb["greeting"], text


def test_a_raising_setup_hook_shows_its_traceback_in_the_first_cell(tmp_path, monkeypatch):
    import json

    _, result = run_startup_in_ipython(tmp_path, "raising_setup", monkeypatch)
    first, second, names = result.stdout.split("@@@")
    at_start, first_cell, second_cell = result.stderr.split("@@@")
    assert "RuntimeError: the database is down" in first_cell, "in the output of the first cell run"
    assert "Setting up the shell from" in first_cell and "site.ini" in first_cell
    assert "database is down" not in at_start + second_cell, "shown once, where the user sees it"
    names = json.loads(names)
    assert "app" in names and "request" in names, "what was set up before the error stays"
    assert names.get("half") == "'set before the error'"


def test_make_startup_script_is_the_pshell_bootstrap():
    nb = {}
    startup.make_startup(nb, "/srv/site/production.ini#main")
    compile(nb["startup"], "startup", "exec")
    assert "load_pshell(globals(), '/srv/site/production.ini#main')" in textwrap.dedent(nb["startup"])
