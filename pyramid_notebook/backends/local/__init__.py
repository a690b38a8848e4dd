"""The local backend (web process): one daemonized Jupyter server per user on this machine — ports,
pid files, the state folder and the fork server client."""
