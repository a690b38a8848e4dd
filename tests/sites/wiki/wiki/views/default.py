from html import escape

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.csrf import get_csrf_token
from pyramid.view import view_config

from .. import models
from . import render


@view_config(route_name='view_wiki')
def view_wiki(request):
    next_url = request.route_url('view_page', pagename='FrontPage')
    return HTTPSeeOther(location=next_url)


@view_config(route_name='view_page', permission='view')
def view_page(request):
    page = request.context.page
    edit_url = request.route_url('edit_page', pagename=page.name)
    body = f'<div id="content">{escape(page.data)}</div><a id="edit" href="{edit_url}">Edit</a>'
    return render(request, page.name, body)


def _form(request, data):
    return (f'<form method="post"><input type="hidden" name="csrf_token" value="{get_csrf_token(request)}">'
            f'<textarea name="body">{escape(data)}</textarea><button name="form.submitted">Save</button></form>')


@view_config(route_name='edit_page', permission='edit')
def edit_page(request):
    page = request.context.page
    if request.method == 'POST':
        page.data = request.params['body']
        next_url = request.route_url('view_page', pagename=page.name)
        return HTTPSeeOther(location=next_url)
    return render(request, 'Editing ' + page.name, _form(request, page.data))


@view_config(route_name='add_page', permission='create')
def add_page(request):
    pagename = request.context.pagename
    if request.method == 'POST':
        body = request.params['body']
        page = models.Page(name=pagename, data=body)
        page.creator = request.identity
        request.dbsession.add(page)
        next_url = request.route_url('view_page', pagename=pagename)
        return HTTPSeeOther(location=next_url)
    return render(request, 'Adding ' + pagename, _form(request, ''))
