"""Legacy policies: HTTP Basic against the INI's accounts, and an authorization policy that asks
the resource which principals it allows (it never reads ``__acl__``)."""
from pyramid.authentication import BasicAuthAuthenticationPolicy
from pyramid.interfaces import IAuthorizationPolicy
from zope.interface import implementer


def parse_accounts(text):
    """``name:password:principal principal`` lines -> {name: (password, [principals])}."""
    accounts = {}
    for line in (text or "").splitlines():
        if line.strip():
            name, password, principals = line.strip().split(":", 2)
            accounts[name] = (password, principals.split())
    return accounts


def check_credentials(username, password, request):
    """The account's principals, or None for a wrong password."""
    account = request.registry.accounts.get(username)
    if account is None or account[0] != password:
        return None
    return ["account:" + username] + account[1]


@implementer(IAuthorizationPolicy)
class ResourcePolicy:
    """Each resource says which principals get which permission: ``allowed_principals(permission)``."""

    def permits(self, context, principals, permission):
        allowed = context.allowed_principals(permission)
        return bool(set(allowed) & set(principals))

    def principals_allowed_by_permission(self, context, permission):
        return context.allowed_principals(permission)


class Root:
    """The API's root: anyone reads the hello page, admins list the accounts."""

    def __init__(self, request):
        self.request = request

    def allowed_principals(self, permission):
        return {"read": ["system.Everyone"], "admin": ["role:admin"]}.get(permission, [])


def includeme(config):
    config.registry.accounts = parse_accounts(config.get_settings().get("accounts.users"))
    config.set_authentication_policy(BasicAuthAuthenticationPolicy(check_credentials, realm="accounts"))
    config.set_authorization_policy(ResourcePolicy())
    config.set_root_factory(Root)
    config.set_default_permission("read")
