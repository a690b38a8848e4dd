"""The demo home page's sharing section (issue 31), through the library's JSON API as any site page would.

``user`` shares their running notebook (open Shell 2 first) with ``user2``, to work in it together, or
with ``viewer``, who has no shell of their own and so only watches: each button POSTs
``{"with", "mode"}`` as JSON to ``/notebook/shares`` (same origin) and shows the link to send. Everyone's
home page lists what was shared with them (``GET /notebook/shares``'s ``received``), each with its link.
The names and links are put in the page as text (``textContent``), never as markup.
"""

SECTION = """<h2>Sharing</h2>
{share}
<h3>Shared with you</h3>
<ul id="shared-with-me"><li>Nothing yet.</li></ul>
<script>
(function () {{
  var url = '/notebook/shares';
  function item(text, href, id) {{
    var li = document.createElement('li');
    li.appendChild(document.createTextNode(text + ' '));
    if (href) {{
      var a = document.createElement('a'); a.href = href; a.textContent = 'Open'; if (id) a.id = id;
      li.appendChild(a);
    }}
    return li;
  }}
  function received() {{
    fetch(url, {{credentials: 'same-origin', headers: {{'Accept': 'application/json'}}}})
      .then(function (r) {{ return r.ok ? r.json() : {{received: []}}; }})
      .then(function (answer) {{
        var list = document.getElementById('shared-with-me');
        if (!answer.received.length) return;
        list.textContent = '';
        answer.received.forEach(function (g) {{
          list.appendChild(item((g.owner_name || g.owner) + ' shares a notebook with you, to ' + g.mode + ', until ' +
                                new Date(g.expires).toLocaleString() + '.', g.url, 'open-share-' + g.owner));
        }});
      }});
  }}
  document.querySelectorAll('button.share').forEach(function (button) {{
    button.addEventListener('click', function () {{
      var result = document.getElementById('share-result');
      fetch(url, {{method: 'POST', credentials: 'same-origin',
                   headers: {{'Content-Type': 'application/json', 'Accept': 'application/json'}},
                   body: JSON.stringify({{'with': button.dataset.with, mode: button.dataset.mode, expires_in: 3600}})}})
        .then(function (r) {{ return r.json().then(function (body) {{ return [r.ok, body]; }}); }})
        .then(function (answer) {{
          result.textContent = '';
          if (!answer[0]) {{ result.appendChild(item(answer[1].error || 'Could not share.')); return; }}
          result.appendChild(item('Shared with ' + answer[1].with + ' (' + answer[1].mode + '). Send them this link: ' +
                                  answer[1].url));
        }});
    }});
  }});
  received();
}})();
</script>
"""

SHARE = """<p>Share your running notebook (open <a href="/shell2">Shell 2</a> first; or use its
<em>File → Share…</em>) for an hour:
<button type="button" class="share" id="share-user2" data-with="user2" data-mode="collaborate">with user2, to work
in it together</button>
<button type="button" class="share" id="share-viewer" data-with="viewer" data-mode="watch">with viewer, to
watch</button></p>
<div id="share-result"></div>
"""


def sharing_section(request) -> str:
    """The section's HTML: the share buttons for users with a shell, and what was shared with the user."""
    return SECTION.format(share=SHARE if request.has_permission("shell") else "")
