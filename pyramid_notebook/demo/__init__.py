"""The pyramid_notebook demo site: ``pserve development.ini``."""
import os

from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory

from pyramid_notebook.demo.models import setup_database
from pyramid_notebook.demo.security import DemoSecurityPolicy, Root


#: Environment variables that override settings, for running the shipped INI files unchanged.
ENVIRONMENT_SETTINGS = {
    "PYRAMID_NOTEBOOK_ALTERNATIVE_DOMAIN": "pyramid_notebook.alternative_domain",
    "PYRAMID_NOTEBOOK_DEMO_COOKIE_DOMAIN": "demo.cookie_domain",
    "PYRAMID_NOTEBOOK_DEMO_DATABASE": "sqlalchemy.url",
    # hub/uwsgi.ini serves hub.ini's app under uWSGI, whose relay is pyramid_notebook.relays.uwsgi's.
    "PYRAMID_NOTEBOOK_WEBSOCKET_PROXY": "pyramid_notebook.websocket_proxy",
    # Who may frame notebook pages (e.g. "'self' https://portal.example.com"), for embedding runs.
    "PYRAMID_NOTEBOOK_FRAME_ANCESTORS": "pyramid_notebook.frame_ancestors",
    # Each user's memory limit on their kernels (e.g. "2G"), and the scrapers' token for the metrics.
    "PYRAMID_NOTEBOOK_MEMORY_LIMIT": "pyramid_notebook.memory_limit",
    "PYRAMID_NOTEBOOK_METRICS_TOKEN": "pyramid_notebook.metrics_token",
}


def _dbsession(request):
    session = request.registry.dbsession_factory()
    request.add_finished_callback(lambda r: session.close())
    return session


def main(global_config, **settings):
    """Make the demo WSGI application."""
    here = os.path.dirname(os.path.abspath(global_config.get("__file__", "development.ini")))
    settings.setdefault("pyramid_notebook.demo.config_file", global_config.get("__file__", ""))
    # Let the environment override the folder without editing the INI file.
    if os.environ.get("PYRAMID_NOTEBOOK_FOLDER"):
        settings["pyramid_notebook.notebook_folder"] = os.environ["PYRAMID_NOTEBOOK_FOLDER"]
    if settings.get("pyramid_notebook.backend") == "jupyterhub":
        # The hub's port and the site's service token, as hub/jupyterhub_config.py reads them.
        if os.environ.get("PYRAMID_NOTEBOOK_HUB_PORT"):
            settings["pyramid_notebook.hub_url"] = \
                f"http://127.0.0.1:{os.environ['PYRAMID_NOTEBOOK_HUB_PORT']}/notebook/"
        if os.environ.get("PYRAMID_NOTEBOOK_HUB_API_TOKEN"):
            settings["pyramid_notebook.hub_api_token"] = os.environ["PYRAMID_NOTEBOOK_HUB_API_TOKEN"]
    # Alternative domain runs (tests, docs) set these without a separate INI file.
    for variable, key in ENVIRONMENT_SETTINGS.items():
        if os.environ.get(variable):
            settings[key] = os.environ[variable]
    # The operator console at /notebook-admin/ for the demo's administrators (demo/security.py: "user").
    settings.setdefault("pyramid_notebook.admin_principals", "role:admin")
    # Team recipes (issue 36): every user with a shell may publish; recipes open with pshell's namespace.
    settings.setdefault("pyramid_notebook.recipe_principals", "role:shell")
    # Live shared sessions (issue 31): users with a shell share it; user ids named as demo/security.py says.
    settings.setdefault("pyramid_notebook.share_principals", "role:shell")
    settings.setdefault("pyramid_notebook.user_lookup", "pyramid_notebook.demo.security.user_lookup")
    if settings["pyramid_notebook.demo.config_file"]:
        settings.setdefault("pyramid_notebook.config_file", settings["pyramid_notebook.demo.config_file"])
    settings.setdefault("sqlalchemy.url", f"sqlite:///{os.path.join(here, 'demo.sqlite')}")

    secret = settings.get("demo.secret", "not a secret, demo only")
    with Configurator(settings=settings, root_factory=Root) as config:
        config.set_security_policy(DemoSecurityPolicy(secret, cookie_domain=settings.get("demo.cookie_domain")))
        # A session for Pyramid's CSRF tokens (the login form's, and the library's confirmation
        # pages'): without one, another site could log the user in as someone else (login CSRF).
        config.set_session_factory(SignedCookieSessionFactory(
            secret + " session", cookie_name="demo_session", httponly=True, samesite="Lax",
            domain=settings.get("demo.cookie_domain") or None))
        config.include("pyramid_notebook")
        config.registry.dbsession_factory = setup_database(settings["sqlalchemy.url"])
        config.add_request_method(_dbsession, "dbsession", reify=True)
        config.add_route("home", "/")
        config.add_route("login", "/login")
        config.add_route("logout", "/logout")
        config.add_route("shell1", "/shell1")
        config.add_route("shell2", "/shell2")
        config.add_route("shell3", "/shell3")
        config.add_route("item_shell", "/items/{id}/shell")
        config.add_route("embed", "/embed")
        config.add_route("embed_save", "/embed/save")
        config.add_route("shutdown_notebook", "/notebook/shutdown")
        config.add_route("notebook_proxy", "/notebook/*remainder")
        config.scan("pyramid_notebook.demo.views")
        config.scan("pyramid_notebook.demo.embed")
        return config.make_wsgi_app()
