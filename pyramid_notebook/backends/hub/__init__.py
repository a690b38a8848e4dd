"""The JupyterHub backend (web process): users' servers are JupyterHub's, driven over its REST API."""
