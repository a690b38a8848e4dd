"""The front door: a site written the way Pyramid's cookiecutter writes sites (``tests/sites/wiki``),
with pyramid_notebook installed from a wheel built from this tree, and README's "Using it in your
site" blocks applied to it as written (taken from README.rst here, so README cannot drift).

The wheel goes into a venv of its own that sees this venv's dependencies through a ``.pth`` line
(fast: no dependency is installed), so the site runs the wheel's copy, not the checkout.
"""
import configparser
import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest
import requests

from tests.helpers import CLICK, KernelChannel, free_port, random_port_base, stop_all_notebooks, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = os.path.join(ROOT, "tests", "sites", "wiki")
MARKER = "# (pyramid_notebook: README's code goes here)"


def readme_blocks(language) -> list:
    """The ``.. code-block:: language`` blocks of README's "Using it in your site" section."""
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\nUsing it in your site\n=====", 1)[1]
    section = re.split(r"\n[^\n]+\n={4,}\n", section, maxsplit=1)[0]
    blocks = []
    for match in re.finditer(rf"\.\. code-block:: {language}\n\n((?:    .*\n|\n)+)", section):
        blocks.append(textwrap.dedent(match.group(1)).strip() + "\n")
    return blocks


def apply_python_block(site):
    """README's first Python block, at the marker line of the site's app factory."""
    block = readme_blocks("python")[0]
    path = os.path.join(site, "wiki", "__init__.py")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    indent = re.search(rf"^( *){re.escape(MARKER)}", source, re.M).group(1)
    source = source.replace(indent + MARKER + "\n", textwrap.indent(block, indent))
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    return block


def merge_ini(path, text):
    """Set the keys of the INI ``text`` in the INI file at ``path`` (sections it names replace keys)."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    ini.read(path)
    extra = configparser.ConfigParser(interpolation=None)
    extra.optionxform = str
    extra.read_string(text)
    for section in extra.sections():
        if section.startswith("server:") and ini.has_section(section):
            ini.remove_section(section)  # another server: its own keys only
        if not ini.has_section(section):
            ini.add_section(section)
        for key, value in extra.items(section):
            ini.set(section, key, value)
    with open(path, "w", encoding="utf-8") as f:
        ini.write(f)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(wheel path, python of a venv holding only the wheel and seeing this venv's dependencies)."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # The tree as git sees it (tracked and new files, not ignored ones), built outside the checkout
    # so that setuptools' build/ and egg-info folders stay out of it.
    source = tmp / "source"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(source / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                            "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(source)], cwd=tmp,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = glob.glob(str(dist / "pyramid_notebook-*.whl"))[0]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: this venv's packages, but not its .pth files (the editable checkout's finder).
    with open(os.path.join(purelib, "_inherit.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--ignore-installed", "--no-index", wheel], check=True)
    located = subprocess.run([python, "-c", "import pyramid_notebook; print(pyramid_notebook.__file__)"],
                             check=True, capture_output=True, text=True, cwd=tmp).stdout.strip()
    assert located.startswith(purelib), f"the site must run the wheel, not the checkout: {located}"
    return wheel, python


def copy_site(tmp_path):
    site = str(tmp_path / "site")
    shutil.copytree(SITE, site, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite"))
    return site


def site_env(site, **extra):
    return dict(os.environ, PYTHONPATH=site, **extra)


def test_the_wheel_holds_the_labextension_assets_and_demo(wheel_venv):
    names = set(zipfile.ZipFile(wheel_venv[0]).namelist())
    assert "pyramid_notebook/labextensions/pyramid-notebook-shutdown/package.json" in names
    assert any(n.startswith("pyramid_notebook/labextensions/pyramid-notebook-shutdown/static/") and n.endswith(".js")
               for n in names)
    assert "pyramid_notebook/assets/notebook-bridge.js" in names
    assert "pyramid_notebook/demo/__init__.py" in names and "pyramid_notebook/web/routes.py" in names


def test_the_sites_own_suite_passes_with_the_include_and_no_notebook_settings(wheel_venv, tmp_path):
    site = copy_site(tmp_path)
    block = apply_python_block(site)
    assert 'config.include("pyramid_notebook")' in block
    with open(os.path.join(site, "testing.ini")) as f:
        assert "pyramid_notebook" not in f.read()
    result = subprocess.run([wheel_venv[1], "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=site,
                            env=site_env(site), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"\b1[0-9] passed", result.stdout), result.stdout[-500:]


def _login(base, name):
    s = requests.Session()
    page = s.get(base + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = s.post(base + "/login", data={"login": name, "password": name, "csrf_token": token, "next": base + "/"},
               allow_redirects=False)
    assert r.status_code == 303, r.text
    return s


@pytest.fixture(scope="module")
def wiki_server(wheel_venv, tmp_path_factory):
    """The wiki with README's code and INI blocks, served by pserve from its development.ini."""
    tmp = tmp_path_factory.mktemp("wiki")
    site = copy_site(tmp)
    apply_python_block(site)
    ini = os.path.join(site, "development.ini")
    for block in readme_blocks("ini"):
        merge_ini(ini, block)
    # Test-only: ports nobody else on this machine uses; no fork server for two launches.
    merge_ini(ini, f"[app:main]\npyramid_notebook.port_base = {random_port_base()}\n"
                   "pyramid_notebook.port_range = 20\npyramid_notebook.fork_server = false\n")
    python = wheel_venv[1]
    env = site_env(site)
    subprocess.run([python, "-m", "wiki.scripts.initialize_db", "development.ini"], cwd=site, env=env, check=True,
                   capture_output=True)
    port = free_port()
    log_path = os.path.join(tmp, "pserve.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([python, "-m", "pyramid.scripts.pserve", "development.ini"], cwd=site,
                                env=dict(env, PYRAMID_NOTEBOOK_DEMO_PORT=str(port)), stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    with serving_site(proc, base + "/login", site, log_path, "the wiki"):
        yield base, site, log_path


@contextlib.contextmanager
def serving_site(proc, probe_url, site, log_path, name):
    """Wait until the site started as ``proc`` answers ``probe_url``; afterwards stop its notebooks
    (in ``<site>/notebooks``) and then the site itself (SIGINT, as a developer's Ctrl-C)."""

    def answers():
        try:
            return requests.get(probe_url, timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(lambda: proc.poll() is not None or answers(), timeout=90, message=f"{name} to serve")
        assert proc.poll() is None, open(log_path).read()[-3000:]
        yield
    finally:
        stop_all_notebooks(os.path.join(site, "notebooks"))
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_anonymous_goes_to_the_sites_login_and_basic_users_get_403(wiki_server):
    base, _, _ = wiki_server
    r = requests.get(base + "/notebook/shell", allow_redirects=False)
    assert r.status_code == 303 and "/login?next=" in r.headers["Location"]
    basic = _login(base, "basic")
    assert basic.get(base + "/notebook/shell", allow_redirects=False).status_code == 403
    assert basic.get(base + "/notebook/tree", allow_redirects=False).status_code == 403
    assert basic.get(base + "/notebook/shutdown", allow_redirects=False, headers=CLICK).status_code == 403
    # The site's catch-all still answers its own pages.
    assert requests.get(base + "/FrontPage").status_code == 200


def test_debugtoolbar_stays_on_under_the_uvicorn_runner(wiki_server):
    base, _, log_path = wiki_server
    page = requests.get(base + "/FrontPage")
    assert 'id="pDebug"' in page.text, "the toolbar is injected: the server says it runs one process"
    assert "multiprocess web server" not in open(log_path).read()


def test_an_editor_gets_pshell_through_the_sites_websocket(wiki_server):
    base, site, _ = wiki_server
    editor = _login(base, "editor")
    r = editor.get(base + "/notebook/shell", allow_redirects=False)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert location.startswith(base + "/notebook/notebooks/")
    assert editor.get(location).status_code == 200
    # The greeting lists what pshell gives, the setup hook's names included.
    name = location.rsplit("/", 1)[1]
    cells = editor.get(base + "/notebook/api/contents/" + name).json()["content"]["cells"]
    greeting = "".join(cell["source"] for cell in cells if cell["cell_type"] == "markdown")
    for word in ("**app**", "**request**", "**registry**", "**root**", "**tm**", "**dbsession**", "**models**"):
        assert word in greeting, (word, greeting)
    xsrf = editor.cookies.get("_xsrf", path="/notebook/")
    r = editor.post(base + "/notebook/api/sessions", headers={"X-XSRFToken": xsrf, "Origin": base},
                    json={"path": name, "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    kernel = r.json()["kernel"]["id"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in editor.cookies)
    channel = KernelChannel(base.replace("http://", "ws://") + f"/notebook/api/kernels/{kernel}/channels",
                            origin=base, cookie=cookie)
    try:
        assert channel.execute("dbsession.query(models.Page).count()") == "1"
        assert channel.execute("type(tm)") == "transaction._manager.TransactionManager"
        assert channel.execute("tm is request.tm and registry is app.registry") == "True"
        # A change committed in the shell is the site's.
        channel.execute("p = dbsession.query(models.Page).one(); p.data = 'Edited from the shell'; tm.commit()")
        assert channel.execute("import pyramid_notebook; pyramid_notebook.__file__.startswith(%r)"
                               % site) == "False"
    finally:
        channel.close()
    assert "Edited from the shell" in requests.get(base + "/FrontPage").text
    r = editor.get(base + "/notebook/shutdown", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == base + "/", "back to the site's root"
    assert editor.get(base + "/notebook/tree", allow_redirects=False).status_code == 502, "stopped"
