"""The front door, round two (issue 35): a second real-world site, ``tests/sites/accounts``, that
authorizes without ACLs (a legacy authentication/authorization policy pair whose authorization
policy asks its resources and never reads ``__acl__``), with HTTP Basic accounts, JSON error views,
every route under ``/v1``, a colour log formatter that ``str.format``-s each message with the
record's fields, and its own start command (``python -m accounts.serve --port N``, which passes
``http_port=N`` to pserve).

pyramid_notebook is installed from the wheel (``wheel_venv`` of tests/test_site_wiki.py) and the
README's blocks are applied as written: the Python block, the INI blocks, and the server block for
sites with their own runner.
"""
import os
import re
import shutil
import subprocess
import textwrap

import pytest
import requests

from pyramid_notebook.core import audit
from tests.helpers import CLICK, KernelChannel, free_port, random_port_base, wait_for
from tests.test_site_wiki import (  # noqa: F401 (wheel_venv: a fixture)
    MARKER, ROOT, merge_ini, readme_blocks, serving_site, wheel_venv,
)

SITE = os.path.join(ROOT, "tests", "sites", "accounts")
ADMIN = ("admin", "s3cret")
ALICE = ("alice", "wonderland")
#: A cell whose audit record a colour formatter used to choke on (``KeyError: '"client"'``).
CELL = 'audited = {"client": "%s" % "127.0.0.1"}; print(f"{audited!r} 100% {{}}")'


def copy_site(tmp):
    site = str(tmp / "site")
    shutil.copytree(SITE, site, ignore=shutil.ignore_patterns("__pycache__"))
    return site


def apply_readme(site):
    """README's Python block at the marker; its INI blocks, then the own-runner server block."""
    path = os.path.join(site, "accounts", "__init__.py")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    indent = re.search(rf"^( *){re.escape(MARKER)}", source, re.M).group(1)
    source = source.replace(indent + MARKER + "\n", textwrap.indent(readme_blocks("python")[0], indent))
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    ini = os.path.join(site, "development.ini")
    runner_blocks = readme_blocks("cfg")
    assert len(runner_blocks) == 1 and "%(http_port)s" in runner_blocks[0], runner_blocks
    for block in readme_blocks("ini") + runner_blocks:
        merge_ini(ini, block)
    return ini


def site_env(site):
    return dict(os.environ, PYTHONPATH=site)


@pytest.fixture(scope="module")
def accounts_server(wheel_venv, tmp_path_factory):  # noqa: F811 (the imported fixture)
    """The accounts site with README's blocks, started by its own command on a free port."""
    tmp = tmp_path_factory.mktemp("accounts")
    site = copy_site(tmp)
    ini = apply_readme(site)
    # README's block grants role:editor; test-only: the console for the site's admins, the site's
    # logging configuration (its colour formatter) in the notebook servers too, free ports.
    merge_ini(ini, f"[app:main]\npyramid_notebook.admin_principals = role:admin\n"
                   "pyramid_notebook.audit_log_config = %(__file__)s\n"
                   f"pyramid_notebook.port_base = {random_port_base()}\npyramid_notebook.port_range = 20\n"
                   "pyramid_notebook.fork_server = false\n")
    port = free_port()
    log_path = os.path.join(tmp, "site.log")
    env = site_env(site)
    env.pop("PYRAMID_NOTEBOOK_DEMO_PORT", None)  # the runner's --port, nothing else
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([wheel_venv[1], "-m", "accounts.serve", "--port", str(port), "development.ini"],
                                cwd=site, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    with serving_site(proc, base + "/v1/", site, log_path, "the accounts site"):
        yield base, site, log_path


def site_log(log_path):
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def test_anonymous_gets_the_sites_401_alice_its_403_never_a_500(accounts_server):
    base, _, log_path = accounts_server
    for path in ("/v1/notebook/shell", "/v1/notebook/tree", "/v1/notebook/api/kernels", "/v1/notebook/shutdown",
                 "/v1/notebook-admin/"):
        anonymous = requests.get(base + path, headers=CLICK, allow_redirects=False)
        assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text)
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic") and anonymous.json()["code"] == 401
        alice = requests.get(base + path, headers=CLICK, auth=ALICE, allow_redirects=False)
        assert alice.status_code == 403 and alice.json()["code"] == 403, (path, alice.status_code, alice.text)
    # Not under the site's prefix: the site's own JSON 404.
    assert requests.get(base + "/notebook/shell", auth=ADMIN).status_code == 404
    # The site is untouched: its own permission checks still ask its own policy.
    assert requests.get(base + "/v1/accounts", auth=ALICE).status_code == 403
    assert requests.get(base + "/v1/accounts", auth=ADMIN).json() == {"accounts": ["admin", "alice"]}
    log = site_log(log_path)
    assert log.count("cannot decide the notebook routes' ACL") == 1, log[-3000:]
    assert "Logging error" not in log and "Traceback" not in log, log[-3000:]


def test_the_admin_gets_a_notebook_under_v1_whose_kernel_has_the_sites_registry(accounts_server):
    base, site, log_path = accounts_server
    admin = requests.Session()
    admin.auth = ADMIN
    r = admin.get(base + "/v1/notebook/shell", allow_redirects=False)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert location.startswith(base + "/v1/notebook/notebooks/"), location
    page = admin.get(location)
    assert page.status_code == 200
    # Static files come through the prefix too.
    statics = re.findall(r'(?:src|href)="(/v1/notebook/static/[^"]+)"', page.text)
    assert statics, page.text[:2000]
    assert admin.get(base + statics[0]).status_code == 200
    name = location.rsplit("/", 1)[1]
    xsrf = admin.cookies.get("_xsrf", path="/v1/notebook/")
    assert xsrf, admin.cookies
    r = admin.post(base + "/v1/notebook/api/sessions", headers={"X-XSRFToken": xsrf, "Origin": base},
                   json={"path": name, "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    kernel = r.json()["kernel"]["id"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in admin.cookies)
    authorization = requests.Request("GET", base, auth=ADMIN).prepare().headers["Authorization"]
    channel = KernelChannel(base.replace("http://", "ws://") + f"/v1/notebook/api/kernels/{kernel}/channels",
                            origin=base, cookie=cookie, headers=[f"Authorization: {authorization}"])
    try:
        # The kernel's copy of the site read the same INI file: the same accounts.
        assert channel.execute("sorted(registry.accounts)") == "['admin', 'alice']"
        assert channel.execute("registry.settings['pyramid_notebook.shell_principals']") == "'role:editor'"
        assert channel.execute("request.route_path('notebook_shell')") == "'/v1/notebook/shell'"
        channel.execute(CELL)
    finally:
        channel.close()
    # The console follows the prefix too.
    rows = admin.get(base + "/v1/notebook-admin/", headers={"Accept": "application/json"}).json()
    assert [row["user"] for row in rows] == ["admin"], rows
    # Audit records reached the site's colour formatter whole: the launch in the site's log, the cell
    # in the notebook server's (it applies the site's logging configuration).
    expected = audit.log_message({"code": CELL}).split(" ", 2)[2]
    server_log = os.path.join(site, "notebooks", ".state", "admin", "notebook.stderr.log")
    wait_for(lambda: expected in site_log(server_log), timeout=30, message="the cell's record in the server's log")
    assert "Logging error" not in site_log(server_log), site_log(server_log)[-3000:]
    log = site_log(log_path)
    assert 'pyramid_notebook audit kind="launch" user="admin"' in log and "Logging error" not in log, log[-3000:]
    r = admin.get(base + "/v1/notebook/shutdown", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == base + "/", "back to the site's root"
    assert admin.get(base + "/v1/notebook/tree", allow_redirects=False).status_code == 502, "stopped"


def test_without_the_asgi_extra_the_sites_command_says_which_pip_install(wheel_venv, tmp_path):  # noqa: F811
    site = copy_site(tmp_path)
    apply_readme(site)
    code = ("import sys; sys.modules['a2wsgi'] = None\n"
            "from accounts.serve import main; sys.exit(main(['--port', '1', 'development.ini']))")
    result = subprocess.run([wheel_venv[1], "-W", "ignore", "-c", code], cwd=site, env=site_env(site),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result
    assert result.stderr.strip() == (
        'egg:pyramid_notebook#uvicorn (and pyramid_notebook.asgi.serve_websocket) needs pyramid_notebook\'s '
        '"asgi" extra (no module named \'a2wsgi\'): pip install "pyramid_notebook[asgi]"'), result.stderr
