"""Shells side by side through every websocket relay: uWSGI (alone and behind nginx), uvicorn's ASGI
relay and nginx accel mode. Shell 1's and Shell 2's kernels, in one server, both answer through it."""
import os

import pytest

from tests.helpers import KernelChannel
from tests.test_accel import stack  # noqa: F401 - fixtures
from tests.test_asgi import asgi_site  # noqa: F401
from tests.test_uwsgi import NGINX, UWSGI, open_kernel, site, uwsgi_server  # noqa: F401


def both_shells_answer(base_url):
    _, ws1, cookie1 = open_kernel(base_url, shell="shell1")
    one = KernelChannel(ws1, origin=base_url, cookie=cookie1)
    try:
        one.execute("x = 41")
        _, ws2, cookie2 = open_kernel(base_url, shell="shell2")
        two = KernelChannel(ws2, origin=base_url, cookie=cookie2)
        try:
            assert two.execute("a + b, 'x' in dir()") == "('foobar', False)"
        finally:
            two.close()
        assert one.execute("x + 1, 'a' in dir()") == "(42, False)"
    finally:
        one.close()


@pytest.mark.skipif(not os.path.exists(UWSGI), reason="needs uWSGI (pip install -e .[uwsgi])")
def test_uwsgi_relay(site):  # noqa: F811
    both_shells_answer(site)


def test_asgi_relay(asgi_site):  # noqa: F811
    both_shells_answer(asgi_site.url)


@pytest.mark.skipif(not os.path.exists(NGINX), reason="needs nginx (scripts/test installs it)")
def test_accel_relay(stack):  # noqa: F811
    both_shells_answer(stack.url)
