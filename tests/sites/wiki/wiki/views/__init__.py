from html import escape

from pyramid.response import Response

LAYOUT = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - Pyramid tutorial wiki</title></head>
<body><p id="user">{user}</p><h1>{title}</h1>{body}</body></html>
"""


def render(request, title, body, status=200):
    """The tutorial renders Jinja2 templates; plain strings keep this test site's deps small."""
    user = request.identity
    who = (f'{escape(user.name)} <a href="{request.route_url("logout")}">Logout</a>' if user is not None
           else f'<a href="{request.route_url("login")}">Login</a>')
    return Response(LAYOUT.format(title=escape(title), body=body, user=who), status=status, charset='utf-8')
