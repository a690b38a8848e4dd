"""Kernels out of reach: a start the user's folder cannot hijack, an endpoint only the site may call,
and channels no other local account can connect to.

Through the demo site (waitress -> Pyramid -> real Jupyter), with real kernels; the other account
is the system's ``nobody``, running the system's Python with pyzmq (``scripts/install-system-packages``).
"""
import json
import os
import select
import stat
import subprocess

import psutil
import pytest
import requests

from pyramid_notebook.core.contextparts import SHELLS_PROOF_HEADER, notebook_part
from tests.helpers import CLICK, KernelChannel, login, login_form_token, pserve_kernel_channel, wait_for

#: The other account's Python: the system's, which ``nobody`` can read (the project's may live under /root).
NOBODY_PYTHON = "/usr/bin/python3"


def launch(session, base_url, shell="/shell1"):
    r = session.get(base_url + shell, allow_redirects=False, headers=CLICK)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def browser_headers(session, base_url):
    """What the notebook page sends with its API calls: Jupyter's XSRF token and the site's origin."""
    session.get(base_url + "/notebook/tree")
    return {"X-XSRFToken": session.cookies.get("_xsrf", path="/notebook/"), "Origin": base_url}


def start_kernel(session, base_url, path):
    """A new notebook's session, as the page makes it: a kernel started now."""
    r = session.post(base_url + "/notebook/api/sessions", headers=browser_headers(session, base_url),
                     json={"path": path, "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    return r.json()["kernel"]["id"]


channel = pserve_kernel_channel


def put_file(session, base_url, name, text):
    r = session.put(f"{base_url}/notebook/api/contents/{name}", headers=browser_headers(session, base_url),
                    json={"type": "file", "format": "text", "content": text})
    assert r.status_code in (200, 201), r.text


def kernel_processes(server_pid):
    return [p for p in psutil.Process(server_pid).children(recursive=True)
            if any("ipykernel" in a for a in p.cmdline())]


# --- the kernel's start --------------------------------------------------------------------------

#: Files the user may write into their folder that a kernel start must not run, each leaving a marker if run.
PLANTED = {
    # `python -m ipykernel_launcher` with the working folder first on sys.path would run this instead
    # (it then starts the real kernel, so that a broken start fails on the marker, not on a time-out).
    "ipykernel_launcher.py": "import sys\nif __name__ == '__main__':\n    from ipykernel import kernelapp\n"
                             "    kernelapp.launch_new_instance()\n",
    # Config files IPython or Jupyter might read from the working folder, and site's hooks.
    "ipython_kernel_config.py": "", "ipython_config.py": "", "jupyter_config.py": "",
    "sitecustomize.py": "", "usercustomize.py": "",
}


def plant(session, base_url, markers):
    for name, rest in PLANTED.items():
        marker = os.path.join(markers, name + ".ran")
        put_file(session, base_url, name, f"open({marker!r}, 'w').close()\n" + rest)
    put_file(session, base_url, "mymodule.py", "VALUE = 42\n")


def check_kernel_in_notebook_folder(kernel, work_folder, markers):
    """The site's startup ran, the planted files did not, and the kernel is where users expect it."""
    assert kernel.execute("type(registry).__name__") == "'Registry'", "the site's startup (pshell namespace) ran"
    assert kernel.execute("import os; os.getcwd()") == repr(work_folder)
    assert kernel.execute("import mymodule; mymodule.VALUE") == "42", "the user's own modules import"
    assert kernel.execute("import sys; sys.path[0] == os.getcwd() and '' in sys.path") == "True"
    assert kernel.execute("'PYRAMID_NOTEBOOK_KERNEL_CWD' in os.environ") == "False"
    assert os.listdir(markers) == [], "a planted file ran at the kernel's start"


def test_a_planted_launcher_or_config_does_not_run_at_kernel_start(demo_server, tmp_path):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    work = demo_server.manager.get_work_folder("user").rstrip("/")
    markers = str(tmp_path / "markers")
    os.mkdir(markers)
    plant(s, base, markers)
    kernel_id = start_kernel(s, base, "new.ipynb")
    kernel = channel(s, demo_server, kernel_id)
    try:
        check_kernel_in_notebook_folder(kernel, work, markers)
        # -P: a plain start's flag; a kernel forked from the zygote (pyramid_notebook.kernel_fork) starts
        # from a process whose sys.path never held the working folder (server/kernel_zygote.py).
        parent = psutil.Process(int(kernel.execute("os.getpid()"))).parent()
        assert kernel.execute("sys.flags.safe_path") == "True" or "kernel zygote" in " ".join(parent.cmdline())
    finally:
        kernel.close()
    # A restart starts the same way.
    r = s.post(f"{base}/notebook/api/kernels/{kernel_id}/restart", headers=browser_headers(s, base))
    assert r.status_code == 200, r.text
    kernel = channel(s, demo_server, kernel_id)
    try:
        check_kernel_in_notebook_folder(kernel, work, markers)
    finally:
        kernel.close()
    # The kernel manager still tells its kernels' state, and the page can interrupt them.
    r = s.post(f"{base}/notebook/api/kernels/{kernel_id}/interrupt", headers=browser_headers(s, base))
    assert r.status_code == 204, r.text


def test_the_spare_kernel_enters_the_notebook_folder_once_claimed(make_demo_server, tmp_path):
    server = make_demo_server(**{"pyramid_notebook.spare_kernel": "always"})
    base = server.url
    s = login(base)
    launch(s, base)
    work = server.manager.get_work_folder("user").rstrip("/")
    markers = str(tmp_path / "markers")
    os.mkdir(markers)
    plant(s, base, markers)  # before the spare starts (5 s after the server)
    wait_for(lambda: len(s.get(base + "/notebook/api/kernels").json()) >= 2, timeout=90,
             message="the spare kernel started")
    location = launch(s, base, "/shell2")
    name = location.rsplit("/", 1)[1]
    sessions = {x["path"]: x["kernel"]["id"] for x in s.get(base + "/notebook/api/sessions").json()}
    kernel = channel(s, server, sessions[name])
    try:
        assert kernel.execute("a + b") == "'foobar'", "Shell 2's startup ran in the claimed kernel"
        assert kernel.execute("import os; os.getcwd()") == repr(work)
        assert kernel.execute("import mymodule; mymodule.VALUE") == "42"
        assert os.listdir(markers) == []
    finally:
        kernel.close()


# --- the library's endpoint ------------------------------------------------------------------------

def registered(server):
    state = server.manager.get_state_folder("user")
    folder = os.path.join(state, ".ipython", "pyramid_notebook_contexts")
    with open(os.path.join(folder, "last")) as f:
        return sorted(os.listdir(folder)), f.read()


def test_the_shells_endpoint_answers_the_site_only(demo_server, tmp_path):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    context = demo_server.manager.get_notebook_status("user")
    before = registered(demo_server)
    marker = str(tmp_path / "registered-startup-ran")
    part = notebook_part({"context_hash": "f" * 64, "startup": f"open({marker!r}, 'w').close()",
                          "greeting": "planted"})
    headers = browser_headers(s, base)
    # Through the site (every relay mode decides in the proxy view), under any spelling.
    for path in ("/notebook/pyramid-notebook/shells", "/notebook/Pyramid-Notebook/shells",
                 "/notebook/pyramid%2Dnotebook/shells", "/notebook/api/../pyramid-notebook/shells",
                 "/notebook/pyramid-notebook/"):
        r = s.post(base + path, json=part, headers=headers)
        assert r.status_code == 404 and "Not part of your notebook" in r.text, (path, r.status_code, r.text[:300])
    # Straight to the notebook's port (pserve mode's websockets go there), with the browser's login
    # cookie and XSRF token, even with the secret the relays add to every request: no proof, no entry.
    url = f"http://127.0.0.1:{context['http_port']}/notebook/pyramid-notebook/shells"
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.path.startswith("/notebook"))
    body = json.dumps(part).encode()
    for extra in ({}, {"Authorization": "token " + context["token"]},
                  {"Authorization": "token " + context["token"], SHELLS_PROOF_HEADER: "0" * 64}):
        r = requests.post(url, data=body, headers=dict(headers, Cookie=cookie, **extra))
        assert r.status_code in (403, 404), (extra.keys(), r.status_code, r.text[:300])
    # The cookie alone is a login to the rest of the notebook: the refusals are the endpoint's.
    r = requests.get(f"http://127.0.0.1:{context['http_port']}/notebook/api/status", headers={"Cookie": cookie})
    assert r.status_code == 200, r.text
    assert registered(demo_server) == before, "nothing was registered"
    assert not os.path.exists(os.path.join(demo_server.manager.get_work_folder("user"), "default-ffffffff.ipynb"))
    # The site's own call still opens another shell.
    location = launch(s, base, "/shell2")
    assert location.endswith(".ipynb") and registered(demo_server) != before
    kernel_id = start_kernel(s, base, "after.ipynb")  # a new notebook starts with the shell opened last
    kernel = channel(s, demo_server, kernel_id)
    try:
        assert kernel.execute("a + b") == "'foobar'"
    finally:
        kernel.close()
    assert not os.path.exists(marker), "a browser's startup script ran"


def test_nginx_accel_mode_refuses_the_endpoint_too(tmp_path_factory):
    """nginx relays by itself after the site's ``auth_request``: the site's refusal holds there as well."""
    from pyramid_notebook.notebookmanager import NotebookManager
    from tests.test_accel import Stack

    stack = Stack("waitress", tmp_path_factory.mktemp("accel"))
    try:
        s = login(stack.url)
        launch(s, stack.url)
        state = NotebookManager(stack.folder).get_state_folder("user")
        contexts = os.path.join(state, ".ipython", "pyramid_notebook_contexts")
        before = sorted(os.listdir(contexts))
        headers = browser_headers(s, stack.url)
        part = notebook_part({"context_hash": "e" * 64, "startup": "", "greeting": "planted"})
        for path in ("/notebook/pyramid-notebook/shells", "/notebook//pyramid-notebook/shells",
                     "/notebook/pyramid-notebook/shells/"):
            r = s.post(stack.url + path, json=part, headers=headers)
            assert r.status_code == 404 and "Not part of your notebook" in r.text, (path, r.status_code, r.text[:300])
        assert sorted(os.listdir(contexts)) == before
    finally:
        stack.stop()


# --- the kernels' sockets --------------------------------------------------------------------------

#: Run as nobody: subscribe to every TCP port given, try every Unix socket, report what arrived.
PROBE = r'''
import errno, json, os, select, socket, sys, time
import zmq

spec = json.loads(sys.argv[1])
context = zmq.Context()
poller = zmq.Poller()
labels = {}
for label, address in spec["zmq"]:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(address)
    poller.register(sub, zmq.POLLIN)
    labels[sub] = label
tried = {}
for path in spec["unix"]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        tried[path] = "connected"
    except OSError as e:
        tried[path] = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
for folder in spec["folders"]:
    try:
        os.listdir(folder)
        tried[folder] = "listed"
    except OSError as e:
        tried[folder] = errno.errorcode.get(e.errno, str(e.errno))
time.sleep(0.5)  # the subscriptions reach the publishers
print("ready", flush=True)
poller.register(sys.stdin.fileno(), zmq.POLLIN)
received = {label: 0 for label in labels.values()}
while True:
    events = dict(poller.poll(30000))
    if not events or sys.stdin.fileno() in events:
        break
    for sub, label in labels.items():
        while sub in events and sub.poll(0):
            sub.recv_multipart()
            received[label] += 1
print(json.dumps({"received": received, "tried": tried}), flush=True)
'''


@pytest.fixture(scope="module")
def nobody_python():
    """The system's Python with pyzmq, usable by nobody; made by ``scripts/install-system-packages``."""
    check = subprocess.run(["runuser", "-u", "nobody", "--", NOBODY_PYTHON, "-c", "import zmq"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, ("nobody cannot run the system's Python with pyzmq: run "
                                   f"scripts/install-system-packages (python3-zmq): {check.stderr}")
    return NOBODY_PYTHON


def control_kernel():
    """A kernel on loopback TCP, as Jupyter starts them by default: the probe must hear it."""
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3", transport="tcp")
    km.start_kernel()
    client = km.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    return km, client


def test_kernels_use_private_unix_sockets_that_another_account_cannot_reach(demo_server, nobody_python):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    context = demo_server.manager.get_notebook_status("user")
    server = psutil.Process(context["pid"])
    wait_for(lambda: kernel_processes(server.pid), timeout=60, message="the warm kernel runs")
    kernels = kernel_processes(server.pid)
    for p in kernels:
        command = " ".join(p.cmdline())  # a forked kernel's is one string (setproctitle), a plain one's a list
        assert " -P " in command and "private_ipykernel.py -f " in command, p.cmdline()
        listening = [c for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening == [], f"kernel {p.pid} listens on TCP: {listening}"
    # The server's own listening ports (its HTTP port, secret-protected) and the kernels' Unix sockets.
    tcp_ports = sorted({c.laddr.port for p in [server] + server.children(recursive=True)
                        for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN})
    assert tcp_ports == [context["http_port"]]
    runtime = os.path.join(demo_server.manager.get_state_folder("user"), ".jupyter", "runtime")
    infos = [json.load(open(os.path.join(runtime, f))) for f in os.listdir(runtime) if f.startswith("kernel-")]
    assert infos and all(i["transport"] == "ipc" for i in infos)
    sockets = [f"{i['ip']}-{i[port]}" for i in infos
               for port in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]
    folders = sorted({os.path.dirname(path) for path in sockets} | {os.path.dirname(os.path.dirname(sockets[0]))})
    # Jupyter counts a kernel started once its process runs: it binds its sockets a moment later.
    wait_for(lambda: all(os.path.exists(path) for path in sockets), timeout=60, message="the kernel's sockets")
    for path in sockets:
        assert stat.S_ISSOCK(os.stat(path).st_mode) and len(os.fsencode(path)) <= 107, path
    for folder in folders:
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder

    km, control = control_kernel()
    probe = None
    try:
        spec = {"zmq": [[f"notebook:{port}", f"tcp://127.0.0.1:{port}"] for port in tcp_ports]
                + [[f"ipc:{path}", f"ipc://{path}"] for path in sockets]
                + [[f"control:{km.iopub_port}", f"tcp://127.0.0.1:{km.iopub_port}"]],
                "unix": sockets, "folders": folders}
        probe = subprocess.Popen(["runuser", "-u", "nobody", "--", nobody_python, "-c", PROBE, json.dumps(spec)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd="/")
        ready, _, _ = select.select([probe.stdout], [], [], 60)
        assert ready and probe.stdout.readline().strip() == "ready", probe.stderr.read()
        # A cell runs and prints in the user's kernel while nobody listens; the control kernel prints too.
        sessions = {x["path"]: x["kernel"]["id"] for x in s.get(base + "/notebook/api/sessions").json()}
        kernel = channel(s, demo_server, sessions[context["notebook_name"]])
        try:
            code = "import time\nfor i in range(10):\n    print('secret', i, flush=True)\n    time.sleep(0.05)\n"
            assert "secret 9" in kernel.execute(code)
        finally:
            kernel.close()
        control.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
        out, err = probe.communicate(input="", timeout=60)
        assert probe.returncode == 0, err
        report = json.loads(out.strip().splitlines()[-1])
    finally:
        if probe is not None and probe.poll() is None:
            probe.kill()
            probe.wait()
        control.stop_channels()
        km.shutdown_kernel(now=True)
    control_label = f"control:{km.iopub_port}"
    assert report["received"].pop(control_label) > 0, "the probe hears a kernel on loopback TCP"
    assert set(report["received"].values()) == {0}, report["received"]
    assert set(report["tried"].values()) == {"EACCES"}, report["tried"]


def output_of(kernel, code, wanted):
    """The stream output of ``code`` once it contains ``wanted`` (a forked child's comes after the reply)."""
    msg_id = kernel.send("shell", "execute_request", {"code": code, "silent": False, "store_history": False,
                                                      "user_expressions": {}, "allow_stdin": False,
                                                      "stop_on_error": True})
    out = ""
    for kind, content, _, _ in kernel.replies(msg_id):
        assert kind != "error", content
        out += content.get("text", "") if kind == "stream" else ""
        if wanted in out:
            return out


def test_forked_children_output_reaches_the_notebook_over_the_private_pipe(demo_server):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    kernel_id = start_kernel(s, base, "fork.ipynb")
    kernel = channel(s, demo_server, kernel_id)
    try:
        code = ("import multiprocessing\np = multiprocessing.get_context('fork').Process(target=print, "
                "args=('from the child',))\np.start(); p.join()\n")
        assert "from the child" in output_of(kernel, code, "from the child")
    finally:
        kernel.close()


def test_the_kernels_sockets_folder_goes_when_the_kernel_stops(demo_server):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    kernel_id = start_kernel(s, base, "short-lived.ipynb")
    runtime = os.path.join(demo_server.manager.get_state_folder("user"), ".jupyter", "runtime")
    with open(os.path.join(runtime, f"kernel-{kernel_id}.json")) as f:
        folder = os.path.dirname(json.load(f)["ip"])
    assert os.path.isdir(folder)
    r = s.delete(f"{base}/notebook/api/kernels/{kernel_id}", headers=browser_headers(s, base))
    assert r.status_code == 204, r.text
    wait_for(lambda: not os.path.exists(folder), timeout=30, message="the kernel's private folder is removed")


# --- JupyterHub's servers: the same kernel manager -------------------------------------------------

@pytest.fixture(scope="module")
def hub_node(tmp_path_factory):
    from tests.hubhelpers import CHP, JUPYTERHUB, Hub, WebNode

    assert os.path.exists(JUPYTERHUB) and os.path.exists(CHP), "scripts/test installs jupyterhub and its proxy"
    hub = Hub(tmp_path_factory.mktemp("hub"))
    node = None
    try:
        node = WebNode(tmp_path_factory.mktemp("nodes"), hub, "node", "pserve")
        yield hub, node
    finally:
        if node is not None:
            node.stop()
        hub.stop()


@pytest.mark.timeout(900)
def test_hub_kernels_are_private_and_its_shells_endpoint_answers_the_site_only(hub_node):
    hub, node = hub_node
    public = "site.example.test"
    origin = f"http://{public}"
    s = requests.Session()
    s.headers["Host"] = public
    r = s.post(node.url + "/login", data={"username": "user", "password": "password",
                                          "csrf_token": login_form_token(s, node.url)}, allow_redirects=False)
    assert r.status_code == 302, r.text
    r = s.get(node.url + "/shell2", allow_redirects=False, headers=CLICK)
    assert r.status_code == 302, r.text
    location = r.headers["Location"][len(origin):]
    path = "/notebook/user/user/"
    assert s.get(node.url + location).status_code == 200  # the page sets Jupyter's _xsrf cookie
    headers = {"X-XSRFToken": s.cookies.get("_xsrf"), "Origin": origin}
    r = s.post(node.url + path + "api/sessions", headers=headers,
               json={"path": location.rsplit("/", 1)[1], "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    ws = node.url.replace("http://", "ws://") + f"{path}api/kernels/{r.json()['kernel']['id']}/channels"
    kernel = KernelChannel(ws, origin=origin, cookie="; ".join(f"{c.name}={c.value}" for c in s.cookies),
                           host=public, timeout=120)
    try:
        assert kernel.execute("a + b") == "'foobar'"
        info = json.loads(kernel.execute("from ipykernel.connect import get_connection_info\n"
                                         "print(get_connection_info())"))
        pid = int(kernel.execute("import os; os.getpid()"))
        assert kernel.execute("import sys; sys.flags.safe_path") == "True"
    finally:
        kernel.close()
    assert info["transport"] == "ipc" and os.path.isabs(info["ip"]), info
    assert stat.S_IMODE(os.stat(os.path.dirname(info["ip"])).st_mode) == 0o700
    assert [c for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN] == []
    # The browser never reaches the endpoint; the site's own call (another shell) still opens.
    r = s.post(node.url + path + "pyramid-notebook/shells", json={}, headers=headers)
    assert r.status_code == 404 and "Not part of your notebook" in r.text, r.text[:300]
    r = s.get(node.url + "/shell1", allow_redirects=False, headers=CLICK)
    assert r.status_code == 302 and r.headers["Location"].endswith(".ipynb"), r.text
    assert r.headers["Location"] != origin + location


def test_a_killed_servers_sockets_folder_is_removed_by_the_next_server(demo_server):
    """A server that cannot clean up (SIGKILL) leaves its short sockets folder; the next one removes it."""
    base = demo_server.url
    s = login(base)
    launch(s, base)
    context = demo_server.manager.get_notebook_status("user")
    runtime = os.path.join(demo_server.manager.get_state_folder("user"), ".jupyter", "runtime")
    wait_for(lambda: [f for f in os.listdir(runtime) if f.startswith("kernel-")], timeout=60, message="a kernel")
    name = next(f for f in os.listdir(runtime) if f.startswith("kernel-"))
    with open(os.path.join(runtime, name)) as f:
        root = os.path.dirname(os.path.dirname(json.load(f)["ip"]))
    # (The test's state folder is too deep for socket paths: the short private folder is in use.)
    assert os.path.basename(root).startswith(f"pyramid-notebook-kernels-{context['pid']}-"), root
    server = psutil.Process(context["pid"])
    processes = [server] + server.children(recursive=True)
    for p in processes:
        p.kill()
    psutil.wait_procs(processes, timeout=30)
    assert os.path.isdir(root)
    launch(s, base)  # a new server, whose first kernel makes its own folder
    assert demo_server.manager.get_notebook_status("user")["pid"] != context["pid"]
    wait_for(lambda: not os.path.exists(root), timeout=60, message="the dead server's sockets folder is removed")
