"""Demo security: three fixed users, a login form (auth ticket cookie) or HTTP Basic auth."""
import hmac

from pyramid.authentication import AuthTktCookieHelper, extract_http_basic_credentials
from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone

#: The demo's users and their passwords. Never do this in a real site.
USERS = {"user": "password", "user2": "password", "viewer": "password"}
#: Demo users with the ``role:admin`` principal: they see the operator console (/notebook-admin/).
ADMINS = {"user"}
#: Demo users with the ``role:shell`` principal (a shell of their own); ``viewer`` only watches what is shared.
SHELL_USERS = {"user", "user2"}
#: Display names, as the site's ``user_lookup`` gives them.
NAMES = {"user": "Demo User", "user2": "Second User", "viewer": "Viewer"}


def check_password(username, password) -> bool:
    """True if ``password`` is the demo password of ``username``."""
    expected = USERS.get(username)
    return expected is not None and hmac.compare_digest(expected.encode(), (password or "").encode())


def principals_of(userid) -> list:
    """The demo user's principals (``userid`` known and logged in)."""
    principals = [Everyone, Authenticated, "user:" + userid]
    if userid in SHELL_USERS:
        principals.append("role:shell")
    if userid in ADMINS:
        principals.append("role:admin")
    return principals


def user_lookup(request, userid):
    """``pyramid_notebook.user_lookup``: the demo user's name and principals, None for an unknown id."""
    if userid not in USERS:
        return None
    return {"name": NAMES[userid], "principals": principals_of(userid)}


class Root:
    """Users with ``role:shell`` may open a shell; everyone logged in sees the home page."""

    __acl__ = [(Allow, "role:shell", "shell"), (Allow, Authenticated, "view")]

    def __init__(self, request):
        self.request = request


class DemoSecurityPolicy:
    """Pyramid 2 security policy: HTTP Basic credentials or a signed login cookie."""

    def __init__(self, secret, cookie_domain=None):
        # cookie_domain (e.g. example.com): one login for www.example.com and the notebooks'
        # alternative domain shell.example.com.
        self.cookie = AuthTktCookieHelper(secret, hashalg="sha512", http_only=True, samesite="Lax",
                                          domain=cookie_domain or None)

    def identity(self, request):
        """The username of the logged-in user, or ``None``."""
        credentials = extract_http_basic_credentials(request)
        if credentials is not None:
            return credentials.username if check_password(credentials.username, credentials.password) else None
        ticket = self.cookie.identify(request)
        if ticket and ticket["userid"] in USERS:
            return ticket["userid"]
        return None

    def authenticated_userid(self, request):
        """Same as :meth:`identity`: the username."""
        return self.identity(request)

    def permits(self, request, context, permission):
        """ACL check with the user's principals."""
        userid = self.identity(request)
        principals = principals_of(userid) if userid else [Everyone]
        return ACLHelper().permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        """Headers that set the login cookie."""
        return self.cookie.remember(request, userid, **kw)

    def forget(self, request, **kw):
        """Headers that clear the login cookie."""
        return self.cookie.forget(request, **kw)
