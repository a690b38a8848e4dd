"""The proxy's cross-origin rules."""
import pytest
from pyramid import testing
from pyramid.request import Request

from pyramid_notebook.core.origin import is_cross_site_request, normalize_origin
from pyramid_notebook.core.settings import parse_settings


@pytest.fixture
def make_request(tmp_path):
    config = testing.setUp()
    config.registry.pyramid_notebook_settings = parse_settings({
        "pyramid_notebook.notebook_folder": str(tmp_path),
        "pyramid_notebook.alternative_domain": "https://shell.example.com"})

    def make(method="POST", headers=None):
        request = Request.blank("/notebook/api/contents", base_url="http://site.example.com:8080",
                                method=method, headers=headers or {})
        request.registry = config.registry
        return request

    yield make
    testing.tearDown()


def test_normalize_origin():
    assert normalize_origin("HTTP://Example.com:80") == "http://example.com"
    assert normalize_origin("https://example.com:443/x") == "https://example.com"
    assert normalize_origin("http://example.com:8080") == "http://example.com:8080"


@pytest.mark.parametrize("method, headers, cross", [
    ("POST", {"Origin": "http://site.example.com:8080"}, False),
    ("POST", {"Origin": "https://shell.example.com"}, False),
    ("POST", {"Origin": "http://evil.example"}, True),
    ("POST", {"Origin": "null"}, True),
    ("DELETE", {"Referer": "http://evil.example/page"}, True),
    ("PUT", {"Referer": "http://site.example.com:8080/notebook/tree"}, False),
    ("POST", {}, False),
    ("GET", {"Origin": "http://evil.example"}, False),
    ("GET", {"Origin": "http://evil.example", "Connection": "keep-alive, Upgrade", "Upgrade": "websocket"}, True),
    ("GET", {"Origin": "http://site.example.com:8080", "Connection": "Upgrade", "Upgrade": "websocket"}, False),
])
def test_cross_site(make_request, method, headers, cross):
    assert is_cross_site_request(make_request(method, headers)) is cross
