"""Code that runs inside JupyterHub's own process (``jupyterhub_config.py`` helpers). Imports only core."""
