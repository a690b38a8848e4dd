"""The API's views and its JSON error views."""
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPUnauthorized
from pyramid.response import Response
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config, view_config
import json
import logging

logger = logging.getLogger(__name__)


def json_error(status, message):
    response = Response(json.dumps({"code": status, "message": message}), status=status,
                        content_type="application/json", charset="utf-8")
    return response


@view_config(route_name="hello", renderer="json")
def hello(request):
    logger.info("hello {user}", extra={"user": request.authenticated_userid or "anonymous"})
    return {"project_name": "accounts", "user": request.authenticated_userid}


@view_config(route_name="accounts", renderer="json", permission="admin")
def list_accounts(request):
    return {"accounts": sorted(request.registry.accounts)}


@forbidden_view_config()
def forbidden(request):
    if request.authenticated_userid is None:
        response = json_error(401, "Please authenticate yourself to use this endpoint.")
        response.headers["WWW-Authenticate"] = 'Basic realm="accounts"'
        return response
    return json_error(403, "This user cannot access this resource.")


@notfound_view_config()
def notfound(request):
    return json_error(404, "The resource you are looking for could not be found.")


@exception_view_config(Exception)
def error(exc, request):
    logger.exception("Internal error")
    return json_error(500, "A programmatic error occured, developers have been informed.")


def includeme(config):
    config.add_route("hello", "/")
    config.add_route("accounts", "/accounts")
    config.scan(__name__)
