"""What ``config.include("pyramid_notebook")`` keeps on the registry: the backend and the relay."""
from pyramid_notebook.core.settings import get_notebook_settings
from pyramid_notebook.relays.choice import relay_from_settings


def get_notebook_manager(request):
    """The notebook backend of this site (:class:`~pyramid_notebook.backends.base.NotebookBackend`):
    a :class:`~pyramid_notebook.notebookmanager.NotebookManager` or a
    :class:`~pyramid_notebook.backends.hub.backend.HubBackend`, as ``pyramid_notebook.backend`` says."""
    get_notebook_settings(request.registry)  # a clear error if includeme was not called
    return request.registry.pyramid_notebook_manager


def get_relay(request):
    """The site's relay (:class:`~pyramid_notebook.relays.base.Relay`), as the settings choose it."""
    relay = getattr(request.registry, "pyramid_notebook_relay", None)
    if relay is None:
        relay = request.registry.pyramid_notebook_relay = relay_from_settings(get_notebook_settings(request.registry))
    return relay
