"""Core: the rules every process shares — the notebook context, settings, names, URLs, origins,
framing, the state folder's layout and the pid checks.

Imports nothing else of the package, so the web site, the notebook server, the fork server and
JupyterHub can all use it.
"""
