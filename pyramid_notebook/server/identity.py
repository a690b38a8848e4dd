"""How a notebook server decides who is talking to it.

Only the web site's proxy knows the per-start secret, and it sends it as
``Authorization: token <secret>``. Stock Jupyter treats any token-authenticated
request as a trusted script and skips its XSRF and Origin checks; behind a
proxy that adds the token to *every* request, that would let any web page ride
the user's site login (cross-site request forgery). So here the secret proves
the request came through the proxy, but the request is still treated like a
browser's: Jupyter's XSRF cookie and Origin checks stay on.

Once the proxy has vouched for a browser, Jupyter's signed login cookie (secret
per start) also admits it, which is what lets pserve-mode websockets go straight
to the notebook's localhost port.
"""
import hmac

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Unicode


class ProxyIdentityProvider(IdentityProvider):
    """Authenticate the site's proxy by a shared secret, keeping XSRF and Origin checks."""

    proxy_token = Unicode(
        "",
        config=True,
        help="Secret the web site's proxy sends upstream as 'Authorization: token <secret>'.",
    )

    @property
    def auth_enabled(self) -> bool:
        """Always on: without the secret or a login cookie nothing is served."""
        return True

    @property
    def login_available(self) -> bool:
        """No login page: users log in to the web site, never to Jupyter."""
        return False

    def _has_proxy_secret(self, handler) -> bool:
        match = self.auth_header_pat.match(handler.request.headers.get("Authorization", ""))
        if not (match and self.proxy_token):
            return False
        return hmac.compare_digest(match.group(2).strip().encode(), self.proxy_token.encode())

    def get_user(self, handler):
        """The owner if the proxy secret or a valid login cookie is present, else ``None``."""
        user = self.get_user_cookie(handler)
        if self._has_proxy_secret(handler) and user is None:
            user = User(username="owner", name="owner", display_name="Notebook owner")
            self.set_login_cookie(handler, user)
        return user

    def is_token_authenticated(self, handler) -> bool:
        """Never: keep Jupyter's XSRF and Origin checks on for proxied requests."""
        return False
