"""Backends (web process): what runs users' notebooks. :mod:`.base` is the interface the views call;
:mod:`.local` runs daemons on this machine, :mod:`.hub` asks JupyterHub. Imports only core."""
