"""A JSON API under /v1 with HTTP Basic accounts and an authorization policy of its own."""
from pyramid.config import Configurator


def main(global_config, **settings):
    """The WSGI application: every route (and every included add-on's) under /v1."""
    config = Configurator(settings=settings, route_prefix="v1")
    config.include(".security")
    config.include(".views")
    # (pyramid_notebook: README's code goes here)
    return config.make_wsgi_app()
