"""Demo: shell 2's notebook inside the site's own page, with the site's own Save button.

``/embed`` frames the notebook (``notebook_url``) under the site's header. The
site's Save button asks the frame to save through the save bridge (the contents
API only has what was saved), then posts the notebook's path to ``/embed/save``,
which reads the notebook server-side (:mod:`pyramid_notebook.web.contents`) and
stores it in the demo database. ``/embed?analysis=ID`` opens a stored analysis in
the frame: it is written into the user's folder as ``analysis-ID.ipynb`` only when that
file is not there yet. An existing file is the user's working copy, at least as new as the
stored one (the site stores what the frame saved); it is opened as it is, never
overwritten, so a link to ``/embed?analysis=ID`` from anywhere (even another site) cannot
destroy work that was not "Saved to the site" yet.
"""
import datetime
import html
import json

from pyramid.httpexceptions import HTTPBadGateway, HTTPBadRequest, HTTPNotFound
from pyramid.view import view_config

from pyramid_notebook.web import contents
from pyramid_notebook.demo.models import Analysis
from pyramid_notebook.demo.views import page, shell2_context
from pyramid_notebook.core.origin import is_cross_site_request
from pyramid_notebook.web.views import error_page, notebook_url

EMBED = """<header id="site-header" style="display:flex;gap:1em;align-items:center;border-bottom:1px solid #ccc">
<strong>pyramid_notebook demo</strong> <a href="/">Home</a>
<span>Analysis: <code id="analysis-name">{name}</code></span>
<button type="button" id="site-save">Save to the site</button>
<span id="save-status" role="status">{status}</span>
</header>
<iframe id="notebook-frame" src="{src}" title="Notebook" style="width:100%;height:70vh;border:0"></iframe>
<h2>Stored analyses</h2>
<ul id="analyses">{analyses}</ul>
<script src="{bridge}"></script>
<script>
(function () {{
  var frame = document.getElementById('notebook-frame');
  var status = document.getElementById('save-status');
  var analysisId = {analysis_id};
  PyramidNotebookBridge.listen(frame, function (message) {{
    if (message.type === 'dirty') {{ status.textContent = 'Unsaved changes'; }}
  }});
  document.getElementById('site-save').addEventListener('click', function () {{
    status.textContent = 'Saving…';
    PyramidNotebookBridge.save(frame, {{timeout: 15000}}).then(function (answer) {{
      return fetch('{save_url}', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
                                  body: JSON.stringify({{path: answer.path, analysis_id: analysisId}})}});
    }}).then(function (response) {{
      return response.json().then(function (body) {{
        if (!response.ok) {{ throw new Error(body.error || response.statusText); }}
        return body;
      }});
    }}).then(function (body) {{
      analysisId = body.id;
      var item = document.getElementById('analysis-' + body.id);
      if (!item) {{
        item = document.createElement('li');
        item.id = 'analysis-' + body.id;
        document.getElementById('analyses').appendChild(item);
      }}
      var link = document.createElement('a');
      link.href = body.url; link.className = 'analysis'; link.textContent = body.name;
      item.replaceChildren(link, ' (saved ' + body.saved_at + ')');
      status.textContent = 'Saved as analysis ' + body.id;
    }}).catch(function (error) {{ status.textContent = 'Not saved: ' + error.message; }});
  }});
}})();
</script>
"""


def _analysis_path(analysis) -> str:
    return f"analysis-{analysis.id}.ipynb"


def _item(request, analysis) -> str:
    url = request.route_url("embed", _query={"analysis": analysis.id})
    return (f'<li id="analysis-{analysis.id}"><a class="analysis" href="{html.escape(url)}">'
            f'{html.escape(analysis.name)}</a> (saved {analysis.saved_at:%Y-%m-%d %H:%M:%S})</li>')


#: Ids are SQLite integers: anything outside 1 .. 2**63-1 names no analysis (and would overflow).
MAX_ID = 2 ** 63 - 1


def _own_analysis(request, analysis_id):
    try:
        analysis_id = int(analysis_id)
    except (TypeError, ValueError):
        raise error_page(HTTPBadRequest, "Bad analysis", "The analysis id is not a number.") from None
    analysis = request.dbsession.get(Analysis, analysis_id) if 0 < analysis_id <= MAX_ID else None
    if analysis is None or analysis.owner != request.authenticated_userid:
        raise error_page(HTTPNotFound, "No such analysis", "You have no stored analysis with that id.")
    return analysis


@view_config(route_name="embed", permission="shell")
def embed(request):
    """Shell 2's notebook (or a stored analysis) in an iframe under the site's header."""
    username = request.authenticated_userid
    context = shell2_context(request)
    analysis, path, status = None, None, ""
    if "analysis" in request.params:
        analysis = _own_analysis(request, request.params["analysis"])
        path = _analysis_path(analysis)
        notebook_url(request, username, context)  # make sure it runs before writing into it
        try:
            if _restore_unless_present(request, username, path, analysis):
                status = f"Reopened analysis {analysis.id}"
            else:
                status = f"Opened your working copy of analysis {analysis.id} ({path})"
        except contents.ContentsError as e:
            raise error_page(HTTPBadGateway, "The analysis could not be restored", str(e)) from None
    src = notebook_url(request, username, context, path=path)
    mine = request.dbsession.query(Analysis).filter_by(owner=username).order_by(Analysis.id)
    return page(EMBED.format(
        name=html.escape(analysis.name if analysis else "shell 2's notebook"), status=html.escape(status),
        src=html.escape(src), analyses="".join(_item(request, a) for a in mine),
        bridge=html.escape(request.static_path("pyramid_notebook:assets/notebook-bridge.js")),
        save_url=request.route_path("embed_save"), analysis_id=json.dumps(analysis.id if analysis else None)))


def _restore_unless_present(request, username, path, analysis) -> bool:
    """Write the stored analysis to ``path`` unless a file is there; True if it was written."""
    try:
        contents.for_user(request, username).get(path, content=False)
        return False  # the working copy: never overwritten from here
    except contents.ContentsNotFound:
        pass
    contents.write_notebook(request, username, path, json.loads(analysis.content))
    return True


def _error(request, status, message):
    request.response.status = status
    return {"error": message}


@view_config(route_name="embed_save", permission="shell", request_method="POST", renderer="json")
def embed_save(request):
    """Store the notebook the frame just saved (read server-side) as an analysis; JSON answer."""
    if is_cross_site_request(request):
        return _error(request, 403, "Cross-origin request refused.")
    username = request.authenticated_userid
    try:
        body = request.json_body
        path = body["path"]
    except (ValueError, KeyError, TypeError):
        return _error(request, 400, "Send JSON with the notebook's path.")
    try:
        notebook = contents.read_notebook(request, username, path)
    except contents.ContentsNotFound as e:
        return _error(request, 404, str(e))
    except contents.ContentsError as e:  # a bad path, or the notebook is not running
        return _error(request, 400, str(e))
    analysis = _own_analysis(request, body["analysis_id"]) if body.get("analysis_id") else None
    if analysis is None:
        analysis = Analysis(owner=username, name=path.rsplit("/", 1)[-1])
        request.dbsession.add(analysis)
    analysis.content = json.dumps(notebook)
    analysis.saved_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    request.dbsession.commit()
    return {"id": analysis.id, "name": analysis.name, "saved_at": f"{analysis.saved_at:%Y-%m-%d %H:%M:%S}",
            "url": request.route_url("embed", _query={"analysis": analysis.id})}
