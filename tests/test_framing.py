"""Who may frame notebook pages: the setting, the defaults and the CSP the daemon sends."""
import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_notebook.core.framing import content_security_policy, framing_context
from pyramid_notebook.core.settings import parse_settings


def parse(value):
    return parse_settings({"pyramid_notebook.notebook_folder": "/tmp/nb",
                           "pyramid_notebook.frame_ancestors": value}).frame_ancestors


def test_setting_values():
    assert parse("") == ()
    assert parse("'self' https://App.example.com:443/ http://localhost:8080") == (
        "'self'", "https://app.example.com", "http://localhost:8080")
    assert parse("'none'") == ("'none'",)


@pytest.mark.parametrize("value", ["*", "https://*.example.com", "https://example.com/path", "example.com",
                                   "'unsafe-inline'", "'none' 'self'", "javascript:alert(1)", "https://a b"])
def test_bad_setting_values(value):
    with pytest.raises(ConfigurationError, match="frame_ancestors"):
        parse(value)


def test_default_is_the_site_itself():
    assert framing_context((), "http://www.example.test", "http://www.example.test") == {
        "frame_ancestors": ["'self'"], "parent_origins": ["http://www.example.test"]}
    # Notebook pages on the alternative domain: the site's pages may still frame them.
    assert framing_context((), "http://www.example.test:8080", "http://shell.example.test:8080") == {
        "frame_ancestors": ["'self'", "http://www.example.test:8080"],
        "parent_origins": ["http://shell.example.test:8080", "http://www.example.test:8080"]}


def test_configured_sources_replace_the_default():
    ctx = framing_context(("https://app.example.com",), "http://www.example.test", "http://shell.example.test")
    assert ctx == {"frame_ancestors": ["https://app.example.com"], "parent_origins": ["https://app.example.com"]}
    assert framing_context(("'none'",), "http://a", "http://a") == {"frame_ancestors": ["'none'"],
                                                                    "parent_origins": []}


def test_content_security_policy_keeps_jupyters_report_uri():
    assert content_security_policy(["'self'", "https://a.example"], "/notebook/") == (
        "frame-ancestors 'self' https://a.example; report-uri /notebook/api/security/csp-report")
    assert content_security_policy(None, "/nb").startswith("frame-ancestors 'self';")
