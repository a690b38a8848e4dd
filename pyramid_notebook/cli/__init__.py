"""``pyramid-notebook``, the operators' command line (see :func:`pyramid_notebook.cli.main.main`)."""
from pyramid_notebook.cli.main import main

__all__ = ["main"]
