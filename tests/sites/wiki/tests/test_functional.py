import re

import pytest
import transaction

from wiki import models

basic_login = dict(login='basic', password='basic')
editor_login = dict(login='editor', password='editor')


@pytest.fixture(scope='session', autouse=True)
def dummy_data(app):
    """
    Add some dummy data to the database.

    Note that this is a session fixture that commits data to the database.
    Think about it similarly to running the ``initialize_db`` script at the
    start of the test suite.

    This data should not conflict with any other data added throughout the
    test suite or there will be issues - so be careful with this pattern!
    """
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        dbsession = models.get_tm_session(app.registry['dbsession_factory'], tm)
        editor = models.User(name='editor', role='editor')
        editor.set_password('editor')
        basic = models.User(name='basic', role='basic')
        basic.set_password('basic')
        page1 = models.Page(name='FrontPage', data='This is the front page')
        page1.creator = editor
        page2 = models.Page(name='BackPage', data='This is the back page')
        page2.creator = basic
        dbsession.add_all([basic, editor, page1, page2])


def login(testapp, params):
    res = testapp.get('/login')
    csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', res.text).group(1)
    params = dict(params, csrf_token=csrf_token, **{'form.submitted': ''})
    return testapp.post('/login', params, status=303)


def test_root(testapp):
    res = testapp.get('/', status=303)
    assert res.location == 'http://example.com/FrontPage'


def test_FrontPage(testapp):
    res = testapp.get('/FrontPage', status=200)
    assert b'FrontPage' in res.body


def test_missing_page(testapp):
    res = testapp.get('/SomePage', status=404)
    assert b'No such page' in res.body


def test_successful_log_in(testapp):
    res = login(testapp, editor_login)
    assert res.location == 'http://example.com/'


def test_failed_log_in(testapp):
    res = testapp.get('/login')
    csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', res.text).group(1)
    res = testapp.post('/login', dict(login='basic', password='incorrect', csrf_token=csrf_token), status=400)
    assert b'Failed login' in res.body


def test_logout_link_present_when_logged_in(testapp):
    login(testapp, editor_login)
    res = testapp.get('/FrontPage', status=200)
    assert b'Logout' in res.body


def test_anonymous_user_cannot_edit(testapp):
    res = testapp.get('/FrontPage/edit_page', status=303).follow()
    assert b'Login' in res.body


def test_anonymous_user_cannot_add(testapp):
    res = testapp.get('/add_page/NewPage', status=303).follow()
    assert b'Login' in res.body


def test_basic_user_cannot_edit_front(testapp):
    login(testapp, basic_login)
    res = testapp.get('/FrontPage/edit_page', status=403)
    assert b'Forbidden' in res.body


def test_basic_user_can_edit_back(testapp):
    login(testapp, basic_login)
    res = testapp.get('/BackPage/edit_page', status=200)
    assert b'Editing' in res.body


def test_basic_user_can_add(testapp):
    login(testapp, basic_login)
    res = testapp.get('/add_page/NewPage', status=200)
    assert b'Adding' in res.body


def test_editors_member_user_can_edit(testapp):
    login(testapp, editor_login)
    res = testapp.get('/FrontPage/edit_page', status=200)
    assert b'Editing' in res.body


def test_editors_member_user_can_view(testapp):
    login(testapp, editor_login)
    res = testapp.get('/FrontPage', status=200)
    assert b'FrontPage' in res.body


def test_pages_with_slashes_are_pages(testapp):
    # The catch-all: /a/b is looked up as the page "a/b".
    res = testapp.get('/some/deep/page', status=404)
    assert b'No such page' in res.body


def test_csrf_is_required(testapp):
    login(testapp, editor_login)
    testapp.post('/FrontPage/edit_page', dict(body='x'), status=400)
