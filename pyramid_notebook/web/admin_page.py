"""The operator console's page: one HTML document, its table drawn and refreshed by a small script.

The rows come embedded as JSON (``#notebook-admin-data``) and then every ``REFRESH_SECONDS`` from
the same URL with ``Accept: application/json``; clicking a column header sorts by it (again to
reverse), and the sort survives refreshes. Actions are forms that POST the site's CSRF token;
the script sends them with ``fetch`` and redraws, and without a script they still work (the
view redirects back here). Kept apart from :mod:`pyramid_notebook.web.admin` so the views stay short.
"""

#: Seconds between refreshes of the table.
REFRESH_SECONDS = 5

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>Notebooks &middot; operator console</title>
<style>
:root {{ --line: #e3e6ea; --muted: #667085; --busy: #b54708; --idle: #027a48; --off: #98a2b3; }}
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #101828;
       background: #f8f9fb; }}
header {{ display: flex; flex-wrap: wrap; gap: 1.5em; align-items: baseline; padding: 14px 24px;
         background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 2; }}
header h1 {{ font-size: 18px; margin: 0; }}
.stat b {{ font-size: 16px; }} .stat {{ color: var(--muted); }}
header form {{ margin-left: auto; }}
main {{ padding: 16px 24px; }}
table {{ width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }}
th, td {{ text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }}
th {{ position: sticky; top: 52px; background: #f2f4f7; cursor: pointer; user-select: none; white-space: nowrap;
     font-weight: 600; font-size: 13px; }}
th[aria-sort=ascending]::after {{ content: " \\25B2"; }} th[aria-sort=descending]::after {{ content: " \\25BC"; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
tr.stopped td {{ color: var(--off); }}
.state {{ font-weight: 600; }} .state.running {{ color: var(--idle); }}
.kernel {{ white-space: nowrap; }} .busy {{ color: var(--busy); font-weight: 600; }} .idle {{ color: var(--idle); }}
.nb {{ color: var(--muted); font-size: 12px; }}
.bar {{ height: 4px; background: var(--line); border-radius: 2px; margin-top: 3px; min-width: 80px; }}
.bar i {{ display: block; height: 4px; border-radius: 2px; background: #2e90fa; }}
.bar i.high {{ background: #f04438; }}
details pre {{ max-width: 48em; max-height: 16em; overflow: auto; font-size: 11px; background: #101828;
              color: #e4e7ec; padding: 8px; border-radius: 4px; white-space: pre-wrap; }}
button {{ font: inherit; padding: 3px 10px; border-radius: 4px; border: 1px solid #d0d5dd; background: #fff;
         cursor: pointer; }}
button.danger {{ border-color: #fda29b; color: #b42318; }}
#notebook-admin-status {{ color: var(--muted); font-size: 12px; }}
#notebook-admin-message {{ margin: 0 0 12px; }}
#audit {{ margin-top: 24px; }}
</style></head>
<body>
<header>
  <h1>Notebooks</h1>
  <span class="stat"><b id="count-running">{running}</b> running of <b id="count-total">{total}</b></span>
  <span class="stat"><b id="count-kernels">{kernels}</b> kernels</span>
  <span class="stat"><b id="total-memory">{memory}</b> memory</span>
  <span id="notebook-admin-status">updated {updated}</span>
  <form method="post" action="{stop_idle_url}" class="action" data-confirm="Stop every notebook whose kernels are all idle?">
    <input type="hidden" name="csrf_token" value="{token}">
    <button type="submit" id="stop-idle" class="danger">Stop all idle</button>
  </form>
</header>
<main>
<p id="notebook-admin-message" role="status">{message}</p>
<table id="notebook-admin-table">
<thead><tr>
  <th data-key="user">User</th><th data-key="state">State</th><th data-key="shell">Shell</th>
  <th data-key="started">Started</th><th data-key="last_activity">Last activity</th>
  <th data-key="kernel_count">Kernels</th><th data-key="memory" class="num">Memory</th>
  <th data-key="cpu_percent" class="num">CPU</th><th data-key="log">Log</th><th></th>
</tr></thead>
<tbody id="notebook-admin-rows"></tbody>
</table>
<noscript><p>This table needs JavaScript; the same list is at this address with
<code>Accept: application/json</code>.</p></noscript>
<section id="audit">{audit}</section>
</main>
<script type="application/json" id="notebook-admin-data">{data}</script>
<script>
(function () {{
  "use strict";
  var token = {token_json}, stopUrl = {stop_url_json}, refresh = {refresh} * 1000;
  var rows = JSON.parse(document.getElementById("notebook-admin-data").textContent);
  var sortKey = "memory", sortDir = -1;
  function el(tag, attrs, children) {{
    var e = document.createElement(tag);
    Object.keys(attrs || {{}}).forEach(function (k) {{ if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]); }});
    (children || []).forEach(function (c) {{ if (c) e.appendChild(c); }});
    return e;
  }}
  function size(bytes) {{
    if (!bytes) return "\\u2013";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (bytes >= 1024 && i < units.length - 1) {{ bytes /= 1024; i++; }}
    return (bytes >= 10 || i === 0 ? Math.round(bytes) : parseFloat(bytes.toFixed(1))) + " " + units[i];
  }}
  function ago(iso) {{
    if (!iso) return "\\u2013";
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (isNaN(s)) return iso;
    if (s < 60) return s + " s ago"; if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago"; return Math.round(s / 86400) + " d ago";
  }}
  function value(r, key) {{
    if (key === "kernel_count") return (r.kernels || []).length;
    if (key === "state") return r.running ? 1 : 0;
    if (key === "log") return (r.log_tail || []).length;
    var v = r[key]; return v === null || v === undefined ? "" : v;
  }}
  function stopForm(user) {{
    var f = el("form", {{method: "post", action: stopUrl, "class": "action", "data-confirm": "Stop the notebook of " + user + "?"}}, [
      el("input", {{type: "hidden", name: "csrf_token", value: token}}),
      el("input", {{type: "hidden", name: "user", value: user}}),
      el("button", {{type: "submit", "class": "danger stop", "data-user": user, text: "Stop"}})]);
    return f;
  }}
  function draw() {{
    var body = document.getElementById("notebook-admin-rows");
    var sorted = rows.slice().sort(function (a, b) {{
      var x = value(a, sortKey), y = value(b, sortKey);
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir || String(a.user).localeCompare(String(b.user));
    }});
    body.textContent = "";
    sorted.forEach(function (r) {{
      var kernels = el("td", {{}}, (r.kernels || []).map(function (k) {{
        return el("div", {{"class": "kernel"}}, [
          el("span", {{"class": k.execution_state || "", text: (k.name || "kernel") + " " + (k.execution_state || "?")}}),
          el("span", {{"class": "nb", text: (k.notebooks || []).length ? " \\u2014 " + k.notebooks.join(", ") : ""}}),
          el("span", {{"class": "nb", text: k.memory ? " (" + size(k.memory) + ")" : ""}})]);
      }}));
      var pct = r.memory_limit ? Math.min(100, 100 * r.memory / r.memory_limit) : 0;
      var memory = el("td", {{"class": "num memory", title: (r.memory_kind || "").toUpperCase()}}, [
        document.createTextNode(size(r.memory) + (r.memory_limit ? " / " + size(r.memory_limit) : "")),
        r.memory_limit ? el("div", {{"class": "bar"}}, [el("i", {{"class": pct > 90 ? "high" : "", style: "width:" + pct.toFixed(0) + "%"}})]) : null]);
      var log = (r.log_tail || []).length ? el("details", {{}}, [el("summary", {{text: r.log_tail.length + " lines"}}),
        el("pre", {{text: r.log_tail.join("\\n")}})]) : document.createTextNode("\\u2013");
      body.appendChild(el("tr", {{"data-user": r.user, "class": r.running ? "running" : "stopped"}}, [
        el("td", {{"class": "user", text: r.user}}),
        el("td", {{"class": "state " + (r.state || ""), text: r.state || (r.running ? "running" : "stopped")}}),
        el("td", {{text: r.shell || "\\u2013"}}),
        el("td", {{title: r.started || "", text: ago(r.started)}}),
        el("td", {{title: r.last_activity || "", text: ago(r.last_activity)}}),
        kernels, memory,
        el("td", {{"class": "num", text: r.cpu_percent === null || r.cpu_percent === undefined ? "\\u2013" : r.cpu_percent + " %"}}),
        el("td", {{}}, [log]),
        el("td", {{}}, [r.running ? stopForm(r.user) : null])]));
    }});
    document.querySelectorAll("th[data-key]").forEach(function (th) {{
      th.setAttribute("aria-sort", th.dataset.key === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none");
    }});
    var running = rows.filter(function (r) {{ return r.running; }});
    document.getElementById("count-running").textContent = running.length;
    document.getElementById("count-total").textContent = rows.length;
    document.getElementById("count-kernels").textContent = running.reduce(function (n, r) {{ return n + (r.kernels || []).length; }}, 0);
    document.getElementById("total-memory").textContent = size(running.reduce(function (n, r) {{ return n + (r.memory || 0); }}, 0));
  }}
  function load() {{
    return fetch(window.location.pathname, {{headers: {{"Accept": "application/json"}}, credentials: "same-origin", cache: "no-store"}})
      .then(function (r) {{ if (!r.ok) throw new Error(r.status); return r.json(); }})
      .then(function (data) {{
        rows = data; draw();
        document.getElementById("notebook-admin-status").textContent = "updated " + new Date().toLocaleTimeString();
      }})
      .catch(function (e) {{ document.getElementById("notebook-admin-status").textContent = "refresh failed (" + e.message + ")"; }});
  }}
  document.querySelectorAll("th[data-key]").forEach(function (th) {{
    th.addEventListener("click", function () {{
      if (sortKey === th.dataset.key) sortDir = -sortDir; else {{ sortKey = th.dataset.key; sortDir = 1; }}
      draw();
    }});
  }});
  document.addEventListener("submit", function (ev) {{
    var form = ev.target;
    if (!form.classList.contains("action")) return;
    ev.preventDefault();
    if (!window.confirm(form.dataset.confirm)) return;
    fetch(form.action, {{method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: {{"Accept": "application/json", "X-CSRF-Token": token}}}})
      .then(function (r) {{ return r.json(); }})
      .then(function (result) {{
        document.getElementById("notebook-admin-message").textContent = result.message || "";
        return load();
      }});
  }});
  draw();
  setInterval(load, refresh);
}})();
</script>
</body></html>
"""
