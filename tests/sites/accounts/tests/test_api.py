"""The site's own tests, as it had them before pyramid_notebook."""
import os

import pytest
import webtest
from pyramid.paster import get_appsettings

from accounts import main

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def app():
    settings = get_appsettings(os.path.join(HERE, "development.ini"), "main")
    return webtest.TestApp(main({}, **settings))


def test_hello_is_public_under_v1(app):
    assert app.get("/v1/").json["project_name"] == "accounts"


def test_accounts_need_an_admin(app):
    r = app.get("/v1/accounts", status=401)
    assert r.headers["WWW-Authenticate"].startswith("Basic") and r.json["code"] == 401
    app.authorization = ("Basic", ("alice", "wonderland"))
    assert app.get("/v1/accounts", status=403).json["code"] == 403
    app.authorization = ("Basic", ("admin", "s3cret"))
    assert app.get("/v1/accounts").json == {"accounts": ["admin", "alice"]}


def test_errors_are_json(app):
    assert app.get("/v1/nowhere", status=404).json["code"] == 404
