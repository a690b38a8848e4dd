"""Pick a free localhost port for a new notebook server."""
import random
import socket


from pyramid_notebook.backends.base import NoFreePort  # noqa: F401 (raised here; importable from here as before)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_is_listening(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True if something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pick_port(min_port: int, port_range: int, reserved=frozenset()) -> int:
    """Return a free port in ``[min_port, min_port + port_range)`` not in ``reserved``.

    ``reserved`` holds ports promised to notebooks that are starting or running
    but might not listen yet. We start at a random offset so two sites sharing
    a range rarely race for the same port.
    """
    ports = list(range(min_port, min_port + port_range))
    offset = random.randrange(len(ports)) if ports else 0
    for port in ports[offset:] + ports[:offset]:
        if port not in reserved and port_is_free(port):
            return port
    raise NoFreePort(
        f"All {port_range} notebook ports ({min_port}-{min_port + port_range - 1}) are in use. "
        "Try again when another user's notebook has stopped, or widen "
        "pyramid_notebook.port_range."
    )
