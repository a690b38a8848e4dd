"""Relays (web process): how a request the site allowed reaches the user's notebook — one module per
mechanism (HTTP proxy, static files from disk, uWSGI and ASGI websockets, nginx accel mode).
Imports backends and core, never the views."""
