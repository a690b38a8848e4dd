"""Create the tables and the first users and page: ``python -m wiki.scripts.initialize_db development.ini``."""
import argparse
import sys

from pyramid.paster import bootstrap, setup_logging

from .. import models
from ..models.meta import Base


def setup_models(dbsession):
    editor = models.User(name='editor', role='editor')
    editor.set_password('editor')
    dbsession.add(editor)

    basic = models.User(name='basic', role='basic')
    basic.set_password('basic')
    dbsession.add(basic)

    page = models.Page(
        name='FrontPage',
        creator=editor,
        data='This is the front page',
    )
    dbsession.add(page)


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument('config_uri', help='Configuration file, e.g., development.ini')
    return parser.parse_args(argv[1:])


def main(argv=sys.argv):
    args = parse_args(argv)
    setup_logging(args.config_uri)
    env = bootstrap(args.config_uri)
    engine = models.get_engine(env['registry'].settings)
    Base.metadata.create_all(engine)
    with env['request'].tm:
        setup_models(env['request'].dbsession)
    env['closer']()


if __name__ == '__main__':
    main()
