"""The front door on any site (issue 35), the parts that need no real server: the add-on's routes
under security policies that do not read ``__acl__`` (pyramid_notebook.web.permission), the audit
logger under a colour formatter, python-json-logger and the stock formatter, and the one line a
missing extra prints."""
import json
import logging
import os
import subprocess
import sys

import pytest
from pyramid.authentication import BasicAuthAuthenticationPolicy
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.interfaces import IAuthorizationPolicy
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import Allowed, Denied
from pythonjsonlogger.json import JsonFormatter
from zope.interface import implementer

from pyramid_notebook.core import audit
from pyramid_notebook.core.extras import EXTRA_MODULES
from pyramid_notebook.web.permission import PRINCIPALS_SETTING
from tests.helpers import CLICK

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNTS = {"admin": ("s3cret", ["role:editor", "role:admin"]), "alice": ("wonderland", ["role:reader"])}
WARNING = "cannot decide the notebook routes' ACL"


def check(username, password, request):
    account = ACCOUNTS.get(username)
    return None if account is None or account[0] != password else list(account[1])


@implementer(IAuthorizationPolicy)
class ResourcePolicy:
    """A site's own authorization policy: it asks the resource, never reads ``__acl__``."""

    def permits(self, context, principals, permission):
        return bool(set(context.allowed_principals(permission)) & set(principals))

    def principals_allowed_by_permission(self, context, permission):
        return context.allowed_principals(permission)


class IgnoresACLPolicy:
    """A Pyramid 2 policy whose ``permits`` lets every logged-in user do anything, and nobody else."""

    def authenticated_userid(self, request):
        return request.headers.get("X-User") or None

    def identity(self, request):
        return self.authenticated_userid(request)

    def permits(self, request, context, permission):
        return Allowed("logged in") if self.authenticated_userid(request) else Denied("anonymous")


class ACLPolicy(IgnoresACLPolicy):
    """Reads the ACL; raises for ``X-Broken`` requests (a database that went away)."""

    def permits(self, request, context, permission):
        if request.headers.get("X-Broken"):
            raise ConnectionError("the accounts database is down")
        user = self.authenticated_userid(request)
        return ACLHelper().permits(context, [Everyone] + ([Authenticated, user] if user else []), permission)


def principals_hook(request):
    """``pyramid_notebook.principals`` for the tests: X-Groups, or raises for X-Broken."""
    if request.headers.get("X-Broken"):
        raise LookupError("no such group table")
    return request.headers.get("X-Groups", "").split()


def forbidden(request):
    """The site's JSON forbidden view: 401 for anonymous users, 403 for the others."""
    status = 401 if request.authenticated_userid is None else 403
    return Response(json=json.dumps({"code": status}), status=status)


def server_error(exc, request):
    """The site's catch-all exception view."""
    return Response(json=json.dumps({"code": 500}), status=500)


def make_app(tmp_path, legacy=False, policy=None, route_prefix=None, **settings):
    settings = dict({"pyramid_notebook.shell_principals": "role:editor carol",
                     "pyramid_notebook.admin_principals": "role:admin",
                     "pyramid_notebook.notebook_folder": str(tmp_path / "notebooks")}, **settings)
    config = Configurator(settings=settings, route_prefix=route_prefix)
    if legacy:
        config.set_authentication_policy(BasicAuthAuthenticationPolicy(check))
        config.set_authorization_policy(ResourcePolicy())
    else:
        config.set_security_policy(policy)
    config.add_forbidden_view(forbidden)
    config.add_exception_view(server_error, context=Exception)
    config.include("pyramid_notebook")
    return config.make_wsgi_app()


def get(app, path, **headers):
    return Request.blank(path, headers=dict(CLICK, **headers)).get_response(app)


def basic(name):
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{ACCOUNTS[name][0]}".encode()).decode()}


def policy_warnings(caplog):
    return [r for r in caplog.records if WARNING in r.getMessage()]


def test_a_legacy_policy_pair_that_ignores_acls_gets_shells_from_its_effective_principals(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pyramid_notebook"):
        app = make_app(tmp_path, legacy=True)
    warnings = policy_warnings(caplog)
    assert len(warnings) == 1 and "AttributeError" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
    assert "effective principals" in warnings[0].getMessage() and PRINCIPALS_SETTING in warnings[0].getMessage()
    for path in ("/notebook/shell", "/notebook/tree", "/notebook/shutdown", "/notebook-admin/"):
        assert get(app, path).status_int == 401, path
        assert get(app, path, **basic("alice")).status_int == 403, path
    # The admin (role:editor, role:admin) passes: a notebook that is not running is the proxy's 502.
    assert get(app, "/notebook/tree", **basic("admin")).status_int == 502
    assert get(app, "/notebook/shutdown", **basic("admin")).status_int == 302
    assert get(app, "/notebook-admin/", Accept="application/json", **basic("admin")).json == []
    assert get(app, "/notebook-admin/metrics", **basic("alice")).status_int == 403
    assert get(app, "/notebook-admin/metrics", **basic("admin")).status_int == 200
    assert len(policy_warnings(caplog)) == 1, "asked once"


def test_a_policy_that_reads_acls_decides_and_one_that_raises_is_a_503_naming_the_setting(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pyramid_notebook"):
        app = make_app(tmp_path, policy=ACLPolicy())
    assert not policy_warnings(caplog)
    assert get(app, "/notebook/tree", **{"X-User": "carol"}).status_int == 502
    assert get(app, "/notebook/tree", **{"X-User": "bob"}).status_int == 403
    assert get(app, "/notebook/tree").status_int == 401
    broken = get(app, "/notebook/tree", **{"X-User": "carol", "X-Broken": "1"})
    assert broken.status_int == 503 and PRINCIPALS_SETTING in broken.text, broken.text
    assert "ConnectionError" in broken.text and "Traceback" not in broken.text


def test_a_policy_that_ignores_acls_is_held_to_the_userid(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pyramid_notebook"):
        app = make_app(tmp_path, policy=IgnoresACLPolicy())
    assert len(policy_warnings(caplog)) == 1
    assert "authenticated_userid" in policy_warnings(caplog)[0].getMessage()
    assert get(app, "/notebook/tree", **{"X-User": "carol"}).status_int == 502
    assert get(app, "/notebook/tree", **{"X-User": "bob"}).status_int == 403, "the policy would allow bob"
    assert get(app, "/notebook/tree").status_int == 401


def test_the_principals_hook_decides_and_a_raising_hook_is_a_503(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pyramid_notebook"):
        app = make_app(tmp_path, policy=ACLPolicy(), **{PRINCIPALS_SETTING: "tests.test_any_policy.principals_hook"})
    assert not policy_warnings(caplog), "the site chose: no warning"
    assert get(app, "/notebook/tree", **{"X-User": "bob", "X-Groups": "role:editor"}).status_int == 502
    assert get(app, "/notebook/tree", **{"X-User": "carol"}).status_int == 403, "the hook's principals only"
    assert get(app, "/notebook-admin/", Accept="application/json",
               **{"X-User": "bob", "X-Groups": "role:admin"}).status_int == 200
    broken = get(app, "/notebook/tree", **{"X-User": "bob", "X-Broken": "1"})
    assert broken.status_int == 503 and PRINCIPALS_SETTING in broken.text and "LookupError" in broken.text


def test_the_routes_follow_the_route_prefix(tmp_path):
    app = make_app(tmp_path, legacy=True, route_prefix="v1")
    assert get(app, "/v1/notebook/tree", **basic("admin")).status_int == 502
    assert get(app, "/v1/notebook-admin/", Accept="application/json", **basic("admin")).status_int == 200
    assert get(app, "/notebook/tree", **basic("admin")).status_int == 404


# --- the audit logger under any formatter -------------------------------------------------------

class ColorFormatter(logging.Formatter):
    """As many sites' colour formatters: the message ``str.format``-ed with the record's fields,
    then the extra fields listed."""

    STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record):
        fields = dict(vars(record))
        message = record.getMessage().format(**fields)
        extra = " ".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in self.STANDARD)
        return f"\x1b[32m{record.levelname}\x1b[0m {message} \x1b[2m{extra}\x1b[0m"


class Capture(logging.Handler):
    """Keeps each formatted line and every logging error (``handleError``)."""

    def __init__(self, formatter):
        super().__init__()
        self.setFormatter(formatter)
        self.lines, self.errors = [], []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - what logging's handlers do: report, go on
            self.handleError(record)

    def handleError(self, record):
        self.errors.append(sys.exc_info()[1])


CODE = 'd = {"client": "%s" % x}\nprint(f"{d!r} 100% done")  # é ✓ {{'


def test_audit_records_reach_a_colour_a_json_and_the_stock_formatter_whole(tmp_path):
    handlers = {"color": Capture(ColorFormatter()), "json": Capture(JsonFormatter()),
                "stock": Capture(logging.Formatter("%(asctime)s %(name)s %(message)s"))}
    logger = logging.getLogger(audit.LOGGER_NAME)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    for handler in handlers.values():
        logger.addHandler(handler)
    stream = str(tmp_path / "audit.jsonl")
    try:
        store = audit.AuditStore(stream)
        stored = [store.append({"kind": "execute", "user": "al{ice}", "code": CODE, "cell": {"id": "x%y"}}),
                  store.append({"kind": "terminal", "user": "al{ice}", "line": "echo ${HOME} %d"})]
        audit.log({"kind": "launch", "user": "al{ice}", "client": "127.0.0.1", "reason": "{why} 100%"})
    finally:
        for handler in handlers.values():
            logger.removeHandler(handler)
        logger.setLevel(old_level)
    for name, handler in handlers.items():
        assert handler.errors == [], (name, handler.errors)
        assert len(handler.lines) == 3, (name, handler.lines)
    # audit.jsonl: canonical JSON as before, the chain intact.
    with open(stream, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert [json.loads(line) for line in lines] == stored
    body = audit.canonical({k: v for k, v in stored[0].items() if k != "hash"})
    assert lines[0] == body[:-1] + f',"hash":"{stored[0]["hash"]}"}}' and audit.verify(stream) is None
    # No text lost: the JSON formatter keeps the record as data; the stock and the colour formatters'
    # message gives it back whole.
    assert [json.loads(line)["audit"] for line in handlers["json"].lines[:2]] == stored
    assert audit.parse_log_message(handlers["stock"].lines[0]) == stored[0]
    assert audit.parse_log_message(handlers["stock"].lines[2])["reason"] == "{why} 100%"
    colour_message = handlers["color"].lines[1].split(" \x1b[2m")[0]
    assert audit.parse_log_message(colour_message) == stored[1]
    assert "\n" not in handlers["stock"].lines[0], "one line per record"


# --- missing extras ----------------------------------------------------------------------------

def run_without(module, code, **kw):
    """Run ``code`` in a fresh Python in which ``module`` cannot be imported."""
    blocked = f"import sys; sys.modules[{module!r}] = None\n"
    return subprocess.run([sys.executable, "-W", "ignore", "-c", blocked + code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, **kw)


@pytest.mark.parametrize("extra, module, code", [
    ("asgi", "a2wsgi", "from pyramid_notebook.relays.asgi_runner import server_factory; server_factory({})"),
    ("asgi", "uvicorn", "from pyramid_notebook.relays.asgi_runner import serve_paste; serve_paste(None, {})"),
    ("hub", "jupyterhub", "from pyramid_notebook.server.hub_singleuser import main; main()"),
])
def test_a_missing_extra_is_one_line_naming_the_pip_install(extra, module, code):
    assert module in EXTRA_MODULES[extra]
    result = run_without(module, code)
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert f'pip install "pyramid_notebook[{extra}]"' in result.stderr and module in result.stderr
    assert "Traceback" not in result.stderr


def test_the_uwsgi_relay_setting_names_the_pip_install():
    result = run_without("wsproto", "from pyramid_notebook.core.settings import parse_settings\n"
                                    "parse_settings({'pyramid_notebook.notebook_folder': '/tmp/x', "
                                    "'pyramid_notebook.websocket_proxy': 'pyramid_notebook.uwsgi.serve_websocket'})")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pyramid.exceptions.ConfigurationError: pyramid_notebook.websocket_proxy"), last
    assert last.endswith('pip install "pyramid_notebook[uwsgi]"'), last


def test_the_runners_thread_pool_default_is_the_relays():
    from pyramid_notebook.relays import asgi_app, asgi_runner

    assert asgi_runner.DEFAULT_THREADS == asgi_app.DEFAULT_THREADS
