"""Web (web process): the Pyramid side — the public views, intent checks, error and progress pages,
the contents API. The top layer of the site's side: it may import relays, backends and core."""
