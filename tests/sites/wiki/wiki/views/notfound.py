from pyramid.view import notfound_view_config

from . import render


@notfound_view_config()
def notfound_view(request):
    return render(request, 'Not found', '<p>No such page.</p>', status=404)
