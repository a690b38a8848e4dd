"""The site's own start command: ``python -m accounts.serve --port 8888 development.ini`` runs
``pserve development.ini http_port=8888`` (the INI's server section says ``%(http_port)s``)."""
import argparse
import sys

from pyramid.scripts import pserve


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve the accounts API")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("ini", nargs="?", default="development.ini")
    args = parser.parse_args(argv)
    return pserve.main(["pserve", args.ini, f"http_port={args.port}"])


if __name__ == "__main__":
    sys.exit(main() or 0)
