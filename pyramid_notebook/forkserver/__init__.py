"""The fork server's own process: imports Jupyter once, then forks a notebook daemon per request.
Imports only core (and, after the fork, the notebook server's code in :mod:`pyramid_notebook.server`)."""
