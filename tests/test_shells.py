"""Shells side by side: another page's shell opens its own notebook and kernel in the running server.

Through the demo site (waitress -> Pyramid -> real Jupyter), with real kernels.
"""
import re

from tests.helpers import CLICK, KernelChannel, daemons_under, login, wait_for
from tests.test_hardening import CROSS_SITE, confirmation_token


def launch(session, base_url, shell, headers=CLICK):
    r = session.get(f"{base_url}{shell}", allow_redirects=False, headers=headers)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def notebook_name(location):
    return re.fullmatch(r".*/notebook/notebooks/(default-[0-9a-f]{8}\.ipynb)", location).group(1)


def sessions(session, base_url):
    r = session.get(base_url + "/notebook/api/sessions")
    assert r.status_code == 200, r.text
    return {s["path"]: s["kernel"]["id"] for s in r.json()}


def channel(session, server, kernel):
    """The kernel's channels, as the browser's notebook page opens them (pserve mode)."""
    context = server.manager.get_notebook_status("user")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies if c.path.startswith("/notebook"))
    return KernelChannel(f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels",
                         origin=server.url, cookie=cookie)


def test_second_shell_opens_beside_the_first_without_a_restart(demo_server):
    base = demo_server.url
    s = login(base)
    first = notebook_name(launch(s, base, "/shell1"))
    pid = demo_server.manager.get_notebook_status("user")["pid"]
    one = channel(s, demo_server, sessions(s, base)[first])
    try:
        one.execute("x = 41")
        # A link from another site to another shell: no confirmation page, nothing is restarted.
        second = notebook_name(launch(s, base, "/shell2", headers=CROSS_SITE))
        assert second != first
        assert demo_server.manager.get_notebook_status("user")["pid"] == pid
        # The launch waited for Shell 2's kernel: its session exists already.
        kernels = sessions(s, base)
        assert second in kernels and kernels[second] != kernels[first]
        assert one.execute("x + 1") == "42", "Shell 1's kernel kept running, untouched"
        two = channel(s, demo_server, kernels[second])
        try:
            assert two.execute("a + b") == "'foobar'"
            assert two.execute("'x' in dir()") == "False", "no variable leaks from Shell 1"
        finally:
            two.close()
        assert one.execute("'a' in dir()") == "False", "no variable leaks from Shell 2"
        # Both welcome notebooks are in the user's folder, each with its own greeting.
        listing = {i["name"] for i in s.get(base + "/notebook/api/contents").json()["content"]}
        assert {first, second} <= listing
        greeting = s.get(base + "/notebook/api/contents/" + second).json()["content"]["cells"][1]["source"]
        assert "**a** - a test variable" in greeting
        # Opening Shell 1 again reuses its notebook and kernel.
        assert notebook_name(launch(s, base, "/shell1")) == first
        assert one.execute("x") == "41"
        assert sessions(s, base)[first] == kernels[first]
    finally:
        one.close()


def test_new_notebooks_start_with_the_shell_opened_last(demo_server):
    base = demo_server.url
    s = login(base)
    launch(s, base, "/shell1")
    launch(s, base, "/shell2")
    s.get(base + "/notebook/tree")
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": base}

    def new_notebooks_kernel():
        r = s.post(base + "/notebook/api/contents", json={"type": "notebook"}, headers=headers)
        assert r.status_code == 201, r.text
        r = s.post(base + "/notebook/api/sessions", headers=headers,
                   json={"path": r.json()["path"], "type": "notebook", "kernel": {"name": "python3"}})
        assert r.status_code == 201, r.text
        return channel(s, demo_server, r.json()["kernel"]["id"])

    kernel = new_notebooks_kernel()
    try:
        assert kernel.execute("a + b") == "'foobar'", "Shell 2 was opened last"
    finally:
        kernel.close()
    launch(s, base, "/shell1")  # the server's own shell, opened last now
    kernel = new_notebooks_kernel()
    try:
        assert kernel.execute("'a' in dir(), type(registry).__name__") == "(False, 'Registry')"
    finally:
        kernel.close()


def test_a_server_part_change_still_restarts_and_asks_cross_site(demo_server):
    base = demo_server.url
    s = login(base)
    launch(s, base, "/shell1")
    pid = demo_server.manager.get_notebook_status("user")["pid"]
    # Shell 3 has another kill_timeout, a server setting: from another site, a confirmation page.
    r = s.get(base + "/shell3", headers=CROSS_SITE, allow_redirects=False)
    token = confirmation_token(r)
    assert "Restart your notebook?" in r.text
    assert demo_server.manager.get_notebook_status("user")["pid"] == pid
    r = s.post(base + "/shell3", data={"csrf_token": token}, allow_redirects=False)
    assert r.status_code == 302, r.text
    context = demo_server.manager.get_notebook_status("user")
    assert context["pid"] != pid and context["kill_timeout"] == 7200
    assert pid not in [p.pid for p in daemons_under(demo_server.manager.notebook_folder)]


def test_each_item_has_a_shell_with_that_item(demo_server):
    base = demo_server.url
    s = login(base)
    home = s.get(base + "/").text
    href = re.search(r'<a id="item-shell-(\d+)" class="item-shell" href="([^"]+)"', home)
    assert href, home
    name = notebook_name(launch(s, base, href.group(2)))
    launch(s, base, "/shell1")  # another shell first: the item's kernel is not the only one
    kernel = channel(s, demo_server, sessions(s, base)[name])
    try:
        assert kernel.execute("item.id, item.name") == f"({href.group(1)}, 'Ground control to Major Tom')"
    finally:
        kernel.close()
    assert s.get(base + "/items/999/shell", headers=CLICK).status_code == 404


def test_kernels_of_left_shells_are_culled(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.kernel_idle_timeout": "2"})
    base = server.url
    s = login(base)
    launch(s, base, "/shell1")
    second = notebook_name(launch(s, base, "/shell2"))
    pid = server.manager.get_notebook_status("user")["pid"]
    kernel = sessions(s, base)[second]
    # Nobody connects to Shell 2's kernel: Jupyter's culling shuts it down; the server stays.
    wait_for(lambda: kernel not in [k["id"] for k in s.get(base + "/notebook/api/kernels").json()], timeout=60,
             message="the idle kernel is culled")
    assert server.manager.get_notebook_status("user")["pid"] == pid
    # Opening Shell 2 again starts its kernel again (it may be culled again soon: 2 s is short).
    assert notebook_name(launch(s, base, "/shell2")) == second
    assert sessions(s, base)[second] != kernel


def test_a_malformed_shell_request_is_a_400(demo_server):
    """The site's own call (with its proof), malformed: 400. (Browsers never reach it: test_private_kernels.)"""
    import requests

    from pyramid_notebook.core.contextparts import SHELLS_PROOF_HEADER, shells_proof

    base = demo_server.url
    s = login(base)
    launch(s, base, "/shell1")
    context = demo_server.manager.get_notebook_status("user")
    url = f"http://127.0.0.1:{context['http_port']}/notebook/pyramid-notebook/shells"
    xsrf = {"Cookie": "_xsrf=x", "X-XSRFToken": "x", "Authorization": "token " + context["token"]}
    for body in (b"not json", b"[]", b'{"context_hash": "../../etc"}', b'{"context_hash": "' + b"a" * 64 + b'", '
                 b'"startup": 1}'):
        proof = {SHELLS_PROOF_HEADER: shells_proof(context["token"], body)}
        r = requests.post(url, data=body, headers=dict(xsrf, **proof))
        assert r.status_code == 400, (body, r.status_code)
        assert "Traceback" not in r.text
    # Without Jupyter's XSRF token (a forged request), refused too.
    body = b"{}"
    r = requests.post(url, data=body, headers={"Authorization": "token " + context["token"],
                                               SHELLS_PROOF_HEADER: shells_proof(context["token"], body)})
    assert r.status_code == 403


def test_second_shell_with_progress_pages_and_in_an_iframe(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.progress_page": "true"})
    base = server.url
    s = login(base)
    first = notebook_name(launch(s, base, "/shell1"))  # not a browser: the plain redirect
    pid = server.manager.get_notebook_status("user")["pid"]
    # A browser's click on another shell: straight to its notebook, no progress page, no restart.
    browser = dict(CLICK, Accept="text/html")
    second = notebook_name(launch(s, base, "/shell2", headers=browser))
    assert second != first and second in sessions(s, base)
    # The progress page's own poll gets the same answer.
    r = s.get(base + "/shell2", headers=dict(browser, **{"X-Pyramid-Notebook-Progress": "1"}))
    assert r.json() == {"state": "ready", "url": f"{base}/notebook/notebooks/{second}"}
    # notebook_url() for the site's iframe: Shell 2's notebook, in the same server.
    launch(s, base, "/shell1")
    page = s.get(base + "/embed", headers=browser)
    assert page.status_code == 200
    assert re.search(r'<iframe id="notebook-frame" src="[^"]*/notebook/notebooks/' + re.escape(second), page.text)
    assert server.manager.get_notebook_status("user")["pid"] == pid


def test_after_a_second_shell_a_spare_kernel_takes_the_next_one(demo_server):
    """``spare_kernel = true`` (the tests' INI): the first spare starts after the first hop."""
    base = demo_server.url
    s = login(base)
    launch(s, base, "/shell1")
    launch(s, base, "/shell2")  # the first hop: the server then starts a spare kernel

    def spare():
        kernels = {k["id"] for k in s.get(base + "/notebook/api/kernels").json()}
        left = kernels - set(sessions(s, base).values())
        return left.pop() if left else None

    spare_id = wait_for(spare, timeout=60, message="a spare kernel")
    name = notebook_name(launch(s, base, "/items/1/shell"))
    assert sessions(s, base)[name] == spare_id, "the item's shell took the spare kernel"
    kernel = channel(s, demo_server, spare_id)
    try:
        assert kernel.execute("item.name, 'a' in dir(), 'x' in dir()") == \
            "('Ground control to Major Tom', False, False)"
        kernel.execute("x = 1")
    finally:
        kernel.close()
    # Restarted from the notebook, it runs the item's startup script again (and only that).
    s.get(base + "/notebook/tree")
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": base}
    assert s.post(f"{base}/notebook/api/kernels/{spare_id}/restart", headers=headers).status_code == 200
    kernel = channel(s, demo_server, spare_id)
    try:
        assert kernel.execute("item.id, 'x' in dir(), 'a' in dir()") == "(1, False, False)"
    finally:
        kernel.close()
    # And another spare is on its way for the next shell.
    wait_for(lambda: (spare() or spare_id) != spare_id, timeout=60, message="the next spare kernel")


def test_by_default_each_shell_starts_its_own_kernel(make_demo_server):
    """The default (``false``, issue 33): no spare; the other shell's kernel is forked on the click.
    The tests' INI pins ``true``, this one leaves the setting empty."""
    server = make_demo_server(**{"pyramid_notebook.spare_kernel": ""})
    base = server.url
    s = login(base)
    first = notebook_name(launch(s, base, "/shell1"))
    assert server.manager.get_notebook_status("user")["spare_kernel"] is False
    second = notebook_name(launch(s, base, "/shell2"))
    kernels = sessions(s, base)
    assert kernels[second] != kernels[first]
    assert {k["id"] for k in s.get(base + "/notebook/api/kernels").json()} == set(kernels.values()), \
        "no kernel but the two shells'"
    kernel = channel(s, server, kernels[second])
    try:
        assert kernel.execute("a + b") == "'foobar'"
    finally:
        kernel.close()


def test_spare_kernel_setting():
    import pytest
    from pyramid.exceptions import ConfigurationError

    from pyramid_notebook.core.settings import parse_settings

    def parse(value):
        return parse_settings({"pyramid_notebook.notebook_folder": "/tmp/notebooks",
                               "pyramid_notebook.spare_kernel": value}).spare_kernel

    assert (parse("always"), parse("true"), parse("off"), parse("")) == ("always", True, False, False)
    with pytest.raises(ConfigurationError, match="true, false or always"):
        parse("sometimes")
