from pyramid.config import Configurator


def main(global_config, **settings):
    """ This function returns a Pyramid WSGI application.
    """
    with Configurator(settings=settings) as config:
        config.include('.models')
        config.include('.routes')
        config.include('.security')
        # (pyramid_notebook: README's code goes here)
        config.scan()
    return config.make_wsgi_app()
