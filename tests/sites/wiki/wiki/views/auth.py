from html import escape

from pyramid.csrf import new_csrf_token, get_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import remember, forget
from pyramid.view import forbidden_view_config, view_config
import sqlalchemy as sa

from .. import models
from . import render


@view_config(route_name='login')
def login(request):
    next_url = request.params.get('next', request.referrer)
    if not next_url:
        next_url = request.route_url('view_wiki')
    message = ''
    login = ''
    if request.method == 'POST':
        login = request.params['login']
        password = request.params['password']
        user = request.dbsession.scalars(sa.select(models.User).where(models.User.name == login)).one_or_none()
        if user is not None and user.check_password(password):
            new_csrf_token(request)
            headers = remember(request, user.id)
            return HTTPSeeOther(location=next_url, headers=headers)
        message = 'Failed login'
        request.response.status = 400

    body = (f'<p class="error">{escape(message)}</p><form method="post" action="{request.route_url("login")}">'
            f'<input type="hidden" name="csrf_token" value="{get_csrf_token(request)}">'
            f'<input type="hidden" name="next" value="{escape(next_url)}">'
            f'<input name="login" value="{escape(login)}"><input type="password" name="password">'
            '<button name="form.submitted">Log In</button></form>')
    return render(request, 'Login', body, status=request.response.status_int)


@view_config(route_name='logout')
def logout(request):
    next_url = request.route_url('view_wiki')
    if request.method == 'POST':
        new_csrf_token(request)
        headers = forget(request)
        return HTTPSeeOther(location=next_url, headers=headers)

    return HTTPSeeOther(location=next_url)


@forbidden_view_config()
def forbidden_view(exc, request):
    if not request.is_authenticated:
        next_url = request.route_url('login', _query={'next': request.url})
        return HTTPSeeOther(location=next_url)

    return render(request, 'Forbidden', '<p>You may not do that.</p>', status=403)
