// pyramid_notebook's prebuilt extension for Notebook 7 and JupyterLab 4:
//
// 1. "Shut down and return to site". Notebook 7 no longer loads custom.js, so the original's
//    File menu item is now this extension. The site's shutdown URL arrives in the page config
//    (pyramidNotebookShutdownUrl); without it the control is not added.
// 2. The save bridge, for a notebook shown in an iframe in the site's own page. The parent page
//    posts {channel: "pyramid_notebook", type: "save", id} and gets {type: "saved", id, path}
//    once the notebook is saved (or {type: "error", id, message}); "status" answers whether the
//    notebook has unsaved changes. Unasked, the frame posts "dirty" when the user edits and
//    "saved" when the notebook is saved. Requests are taken only from the frame's parent window
//    and only from the origins allowed to frame the notebook (pyramidNotebookParentOrigins, from
//    pyramid_notebook.frame_ancestors); answers go to that exact origin, never "*". Without
//    that page config (any other Jupyter server) the bridge does nothing.
// 3. "Publish to team recipes…" (File menu and command palette): asks for the recipe's name
//    (default: the file's) and a one-line message, saves the notebook, and POSTs
//    {path, name, message} as JSON to the site's recipes URL (pyramidNotebookRecipesUrl, a path on
//    the page's own origin, so the request is same-origin). Without that page config: no command.
// 4. "Share…" (File menu and command palette, the notebook's owner only): a dialog to share the
//    running notebook with a team mate (a user id or a principal such as role:editor), to
//    collaborate or to watch, for a while. It POSTs {with, mode, expires_in, path} as JSON to the
//    site's shares URL (pyramidNotebookSharesUrl, same origin), shows the link to send, and lists
//    the shares given (GET) with who is connected now, each with a Revoke button (DELETE). Errors
//    are the site's own words (the 4xx JSON's "error"). With pyramid_notebook.collaboration = auto
//    a page that does not co-edit yet (pyramidNotebookCollaboration "dormant") tells the server it
//    is shared and offers to reload, after which both people's edits are live.
// 5. "Watched by …" (the owner's page, top bar): shown while a site administrator watches this
//    notebook from the operator console. The names come from the page config
//    (pyramidNotebookWatchers, for a page opened during a watch) and then from the server's event
//    stream (the supervision schema), which every page keeps open: that open stream is also what
//    tells the server a watcher's page is still there.
// 6. "Why do you run this cell?" (sensitive.js): the reason a sensitive cell needs, asked for in a dialog.
// 7. The files a notebook page loaded (pagefiles.js), posted to the site for the next cold click.
import { Dialog, ICommandPalette, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { Widget } from '@lumino/widgets';

import { pageFilesPlugin } from './pagefiles';
import { sensitivePlugin } from './sensitive';

const COMMAND = 'pyramid-notebook:shutdown';
const LABEL = 'Shut down and return to site';
const CHANNEL = 'pyramid_notebook';

class ShutdownButton extends Widget {
  constructor(commands) {
    const node = document.createElement('button');
    node.type = 'button';
    node.textContent = LABEL;
    node.title = 'Stop this notebook server and go back to the web site';
    super({ node });
    this.id = 'pyramid-notebook-shutdown';
    this.addClass('pyramid-notebook-shutdown');
    node.addEventListener('click', () => commands.execute(COMMAND));
  }
}

const shutdownPlugin = {
  id: 'pyramid-notebook-shutdown:plugin',
  description: 'A control that shuts the notebook down and returns to the web site.',
  autoStart: true,
  optional: [IMainMenu],
  activate: (app, mainMenu) => {
    const url = PageConfig.getOption('pyramidNotebookShutdownUrl');
    if (!url) {
      return;
    }
    app.commands.addCommand(COMMAND, {
      label: LABEL,
      execute: () => {
        // The site's shutdown view stops this server and redirects to the site. Inside the
        // site's own page (an iframe) the whole page goes back to the site.
        if (window.top !== window) {
          try {
            window.top.location.assign(url);
            return;
          } catch (e) {
            // a parent we may not navigate: go back inside the frame
          }
        }
        window.location.assign(url);
      }
    });
    app.shell.add(new ShutdownButton(app.commands), 'top', { rank: 1000 });
    if (mainMenu) {
      mainMenu.fileMenu.addGroup([{ command: COMMAND }], 1000);
    }
  }
};

function allowedParentOrigins() {
  const value = PageConfig.getOption('pyramidNotebookParentOrigins') || '';
  return value.split(/\s+/).filter(Boolean);
}

// The document open in the page, if it is one that can be saved (a notebook panel). Found
// through the shell rather than INotebookTracker, so that the extension needs no package
// beyond what the shutdown control already uses.
function currentDocument(app) {
  const widget = app.shell.currentWidget;
  return widget && widget.context && typeof widget.context.save === 'function' ? widget : null;
}

const bridgePlugin = {
  id: 'pyramid-notebook-shutdown:save-bridge',
  description: "Lets the site's page that frames the notebook save it and hear about edits.",
  autoStart: true,
  activate: app => {
    const origins = allowedParentOrigins();
    if (!origins.length || window.parent === window) {
      return;
    }
    // The parent's exact origin: from the browser where it says (Chromium, Safari), else from
    // the parent's first valid request. Until then unasked notices go nowhere.
    const ancestors = window.location.ancestorOrigins;
    let parentOrigin = ancestors && ancestors.length && origins.includes(ancestors[0]) ? ancestors[0] : null;

    const post = (message, origin) => {
      window.parent.postMessage({ channel: CHANNEL, ...message }, origin);
    };
    const notify = message => {
      if (parentOrigin) {
        post(message, parentOrigin);
      }
    };
    const watched = new WeakSet();
    const watch = () => {
      const panel = currentDocument(app);
      if (!panel || watched.has(panel)) {
        return;
      }
      watched.add(panel);
      const context = panel.context;
      context.model.stateChanged.connect((model, change) => {
        if (change.name === 'dirty' && change.newValue) {
          notify({ type: 'dirty', path: context.path });
        }
      });
      context.saveState.connect((sender, state) => {
        if (state === 'completed') {
          notify({ type: 'saved', path: context.path });
        }
      });
    };
    if (app.shell.currentChanged) {
      app.shell.currentChanged.connect(watch);
    }
    app.restored.then(watch);

    window.addEventListener('message', async event => {
      // Only our parent window, only from an allowed origin: anything else is ignored unanswered.
      if (event.source !== window.parent || !origins.includes(event.origin)) {
        return;
      }
      const data = event.data;
      if (!data || typeof data !== 'object' || data.channel !== CHANNEL) {
        return;
      }
      parentOrigin = event.origin;
      watch();
      const panel = currentDocument(app);
      const id = data.id;
      if (data.type === 'status') {
        post({ type: 'status', id, path: panel ? panel.context.path : null,
               dirty: panel ? panel.context.model.dirty : false }, event.origin);
        return;
      }
      if (data.type !== 'save') {
        return;
      }
      if (!panel) {
        post({ type: 'error', id, message: 'No notebook is open in the frame.' }, event.origin);
        return;
      }
      try {
        await panel.context.ready;
        await panel.context.save();
        post({ type: 'saved', id, path: panel.context.path }, event.origin);
      } catch (e) {
        post({ type: 'error', id, message: String((e && e.message) || e) }, event.origin);
      }
    });
  }
};

const PUBLISH_COMMAND = 'pyramid-notebook:publish-recipe';
const PUBLISH_LABEL = 'Publish to team recipes…';

// The default recipe name of a notebook path: its file name, lowercased, other characters as dashes.
function recipeName(path) {
  const stem = path.split('/').pop().replace(/\.ipynb$/i, '').toLowerCase();
  return stem.replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64).replace(/-+$/, '') || 'recipe';
}

// The dialog's body: the recipe's name and a one-line message.
class PublishForm extends Widget {
  constructor(name) {
    const node = document.createElement('div');
    node.className = 'pyramid-notebook-publish';
    const field = (label, id, value, hint) => {
      const wrapper = document.createElement('label');
      wrapper.style.display = 'block';
      wrapper.style.marginBottom = '0.6em';
      wrapper.textContent = label;
      const input = document.createElement('input');
      input.className = 'jp-mod-styled';
      input.id = id;
      input.value = value;
      input.placeholder = hint;
      input.style.display = 'block';
      input.style.width = '100%';
      wrapper.appendChild(input);
      node.appendChild(wrapper);
      return input;
    };
    super({ node });
    this.nameInput = field('Name (lowercase letters, digits and dashes)', 'pyramid-notebook-recipe-name', name,
      'orders-per-day');
    this.messageInput = field('What is new (one line)', 'pyramid-notebook-recipe-message', '',
      'First version');
  }

  getValue() {
    return { name: this.nameInput.value.trim(), message: this.messageInput.value.trim() };
  }
}

async function publish(panel, url, name, message) {
  await panel.context.ready;
  await panel.context.save();
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ path: panel.context.path, name, message })
  });
  let answer = {};
  try {
    answer = await response.json();
  } catch (e) {
    // not JSON: the status says enough
  }
  if (response.status !== 201) {
    throw new Error(answer.error || `The site answered ${response.status} ${response.statusText}.`);
  }
  return answer;
}

const publishPlugin = {
  id: 'pyramid-notebook-shutdown:publish-recipe',
  description: "Publishes the open notebook to the site's team recipes.",
  autoStart: true,
  optional: [IMainMenu, ICommandPalette],
  activate: (app, mainMenu, palette) => {
    const url = PageConfig.getOption('pyramidNotebookRecipesUrl');
    if (!url) {
      return;
    }
    const notebook = () => {
      const panel = currentDocument(app);
      return panel && /\.ipynb$/i.test(panel.context.path) ? panel : null;
    };
    app.commands.addCommand(PUBLISH_COMMAND, {
      label: PUBLISH_LABEL,
      caption: "Share this notebook with your team: every version is kept, with its author",
      isEnabled: () => notebook() !== null,
      execute: async () => {
        const panel = notebook();
        if (!panel) {
          return;
        }
        const form = new PublishForm(recipeName(panel.context.path));
        const result = await showDialog({
          title: 'Publish to team recipes',
          body: form,
          focusNodeSelector: 'input',
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
        });
        if (!result.button.accept) {
          return;
        }
        try {
          const answer = await publish(panel, url, result.value.name, result.value.message);
          const body = document.createElement('p');
          body.id = 'pyramid-notebook-published';
          body.textContent = `"${answer.name}" version ${answer.version} is in the team's recipes. `;
          const link = document.createElement('a');
          link.href = answer.url || url;
          link.target = '_blank';
          link.rel = 'noopener';
          link.textContent = 'See it on the site';
          body.appendChild(link);
          await showDialog({ title: 'Published', body: new Widget({ node: body }), buttons: [Dialog.okButton()] });
        } catch (e) {
          await showErrorMessage('Not published', String((e && e.message) || e));
        }
      }
    });
    if (palette) {
      palette.addItem({ command: PUBLISH_COMMAND, category: 'Team recipes' });
    }
    if (mainMenu) {
      mainMenu.fileMenu.addGroup([{ command: PUBLISH_COMMAND }], 999);
    }
  }
};

const SHARE_COMMAND = 'pyramid-notebook:share';
const SHARE_LABEL = 'Share…';
//: Choices of how long a share lasts: [seconds, label]; the site caps it (share_max_seconds).
const DURATIONS = [[900, '15 minutes'], [3600, '1 hour'], [4 * 3600, '4 hours'], [86400, '1 day']];

function element(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    node.append(child);
  }
  return node;
}

async function sharesRequest(url, method, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let answer = {};
  if (response.status !== 204) {
    try {
      answer = await response.json();
    } catch (e) {
      // not JSON: the status says enough
    }
  }
  if (!response.ok) {
    throw new Error(answer.error || `The site answered ${response.status} ${response.statusText}.`);
  }
  return answer;
}

function xsrfToken() {
  const match = document.cookie.match('\\b_xsrf=([^;]*)\\b');
  return match ? decodeURIComponent(match[1]) : '';
}

// With collaboration "auto", tell this notebook server it is shared: its pages co-edit from now on.
async function markShared() {
  const response = await fetch(PageConfig.getBaseUrl() + 'api/pyramid-notebook/collaboration', {
    method: 'PUT', credentials: 'same-origin', headers: { 'X-XSRFToken': xsrfToken() }
  });
  return response.ok;
}

// The dialog's body: the form, the last link made, any error, and the shares given with Revoke.
class ShareForm extends Widget {
  constructor(url, path, app) {
    super({ node: element('div', { className: 'pyramid-notebook-share' }) });
    this.url = url;
    this.path = path;
    this.app = app;
    const node = this.node;
    const label = (text, input) => element('label', { style: 'display:block;margin-bottom:0.6em' }, text, input);
    this.withInput = element('input', { id: 'pyramid-notebook-share-with', className: 'jp-mod-styled',
      placeholder: 'user id, or a principal such as role:editor', style: 'display:block;width:100%' });
    this.modeSelect = element('select', { id: 'pyramid-notebook-share-mode', className: 'jp-mod-styled' },
      element('option', { value: 'collaborate', textContent: 'Collaborate: edit and run together' }),
      element('option', { value: 'watch', textContent: 'Watch: see it live, change nothing' }));
    this.expirySelect = element('select', { id: 'pyramid-notebook-share-expires', className: 'jp-mod-styled' },
      ...DURATIONS.map(([seconds, text]) => element('option', { value: String(seconds), textContent: text })));
    this.expirySelect.value = '3600';
    const button = element('button', { id: 'pyramid-notebook-share-submit', type: 'button',
      className: 'jp-Dialog-button jp-mod-accept jp-mod-styled', textContent: 'Share' });
    button.addEventListener('click', () => this.share());
    this.error = element('p', { id: 'pyramid-notebook-share-error', className: 'pyramid-notebook-share-error',
      style: 'color:var(--jp-error-color1)' });
    this.result = element('div', { id: 'pyramid-notebook-share-result' });
    this.list = element('ul', { id: 'pyramid-notebook-share-list', style: 'padding-left:1.2em' });
    node.append(label('Share with', this.withInput), label('Mode ', this.modeSelect),
      label('For ', this.expirySelect), button, this.error, this.result,
      element('h3', { textContent: 'Shared now' }), this.list);
    this.refresh();
  }

  async share() {
    this.error.textContent = '';
    const body = { with: this.withInput.value.trim(), mode: this.modeSelect.value,
      expires_in: Number(this.expirySelect.value) };
    if (this.path) {
      body.path = this.path;
    }
    let answer;
    try {
      answer = await sharesRequest(this.url, 'POST', body);
    } catch (e) {
      this.error.textContent = String((e && e.message) || e);
      return;
    }
    const link = element('input', { id: 'pyramid-notebook-share-link', className: 'jp-mod-styled', readOnly: true,
      value: answer.url, style: 'display:block;width:100%' });
    link.addEventListener('focus', () => link.select());
    this.result.replaceChildren(element('p', {
      textContent: `Send this link to ${answer.with} (${answer.mode}, until ${new Date(answer.expires).toLocaleString()}):`
    }), link);
    if (answer.note) {
      this.result.append(element('p', { textContent: answer.note }));
    }
    if (PageConfig.getOption('pyramidNotebookCollaboration') === 'dormant' && await markShared()) {
      const reload = element('button', { id: 'pyramid-notebook-share-reload', type: 'button',
        className: 'jp-Dialog-button jp-mod-styled', textContent: 'Save and reload to edit together live' });
      reload.addEventListener('click', async () => {
        const panel = currentDocument(this.app);
        if (panel) {
          await panel.context.save();
        }
        window.location.reload();
      });
      this.result.append(reload);
    }
    await this.refresh();
  }

  async refresh() {
    let answer;
    try {
      answer = await sharesRequest(this.url, 'GET');
    } catch (e) {
      this.error.textContent = String((e && e.message) || e);
      return;
    }
    const given = answer.given || [];
    if (!given.length) {
      this.list.replaceChildren(element('li', { textContent: 'Nobody: this notebook is yours alone.' }));
      return;
    }
    this.list.replaceChildren(...given.map(grant => {
      const revoke = element('button', { type: 'button', className: 'jp-mod-styled pyramid-notebook-share-revoke',
        textContent: 'Revoke' });
      revoke.dataset.id = grant.id;
      revoke.addEventListener('click', async () => {
        try {
          await sharesRequest(`${this.url}/${encodeURIComponent(grant.id)}`, 'DELETE');
        } catch (e) {
          this.error.textContent = String((e && e.message) || e);
        }
        await this.refresh();
      });
      const who = grant.with_name && grant.with_name !== grant.with ? `${grant.with_name} (${grant.with})` : grant.with;
      const active = (grant.active || []).length ? `connected now: ${grant.active.join(', ')}` : 'not connected';
      const item = element('li', { className: 'pyramid-notebook-share-item' },
        `${who}: ${grant.mode}, until ${new Date(grant.expires).toLocaleString()}, ${active} `, revoke);
      item.dataset.with = grant.with;
      return item;
    }));
  }
}

const sharePlugin = {
  id: 'pyramid-notebook-shutdown:share',
  description: 'Shares the running notebook with a team mate, to work in it together or to watch.',
  autoStart: true,
  optional: [IMainMenu, ICommandPalette],
  activate: (app, mainMenu, palette) => {
    const url = PageConfig.getOption('pyramidNotebookSharesUrl');
    // Only the owner shares: a guest's page in the same server has no such command.
    const role = PageConfig.getOption('pyramidNotebookRole') || 'owner';
    if (!url || role !== 'owner') {
      return;
    }
    app.commands.addCommand(SHARE_COMMAND, {
      label: SHARE_LABEL,
      caption: 'Share this running notebook with a team mate: to work in it together, or to watch',
      execute: async () => {
        const panel = currentDocument(app);
        const path = panel && /\.ipynb$/i.test(panel.context.path) ? panel.context.path : '';
        await showDialog({ title: 'Share this notebook', body: new ShareForm(url, path, app),
          focusNodeSelector: 'input', buttons: [Dialog.okButton({ label: 'Close' })] });
      }
    });
    if (palette) {
      palette.addItem({ command: SHARE_COMMAND, category: 'Sharing' });
    }
    if (mainMenu) {
      mainMenu.fileMenu.addGroup([{ command: SHARE_COMMAND }], 998);
    }
  }
};

const WATCH_SCHEMA = 'https://pyramid-notebook.readthedocs.io/events/supervision';

class WatchedNotice extends Widget {
  constructor() {
    super({ node: element('div', { className: 'pyramid-notebook-watched',
      title: 'A site administrator is watching this notebook (read only); the watch is in the audit trail' }) });
    this.id = 'pyramid-notebook-watched';
  }

  setNames(names) {
    // textContent: the names are shown as text, never as markup
    this.node.textContent = names.length ? `Watched by ${names.join(', ')}` : '';
    this.setHidden(!names.length);
  }
}

function pageList(name) {
  // the page config keeps the server's JSON values; a string when another server set one
  let value = PageConfig.getOption(name);
  if (typeof value === 'string') {
    try { value = JSON.parse(value); } catch (e) { value = []; }
  }
  return Array.isArray(value) ? value.map(String) : [];
}

const watchedPlugin = {
  id: 'pyramid-notebook-shutdown:watched',
  description: 'Shows the notebook\'s owner which site administrators are watching it.',
  autoStart: true,
  activate: (app) => {
    const events = app.serviceManager.events;
    const role = PageConfig.getOption('pyramidNotebookRole') || 'owner';
    if (role === 'watch') {
      // A watcher saves nothing (the server refuses it), so there is nothing to lose on leaving: no
      // "unsaved changes" prompt, which the page's own refused bookkeeping edits would raise. Capture,
      // at the window, runs before the document manager's listener.
      window.addEventListener('beforeunload', event => event.stopImmediatePropagation(), true);
    }
    const notice = role === 'owner' ? new WatchedNotice() : null;
    if (notice) {
      notice.setNames(pageList('pyramidNotebookWatchers'));
      app.shell.add(notice, 'top', { rank: 990 });
    }
    if (events) {
      events.stream.connect((_, event) => {
        if (notice && event && event.schema_id === WATCH_SCHEMA && Array.isArray(event.watching)) {
          notice.setNames(event.watching.map(String));
        }
      });
    }
  }
};

export default [shutdownPlugin, bridgePlugin, publishPlugin, sharePlugin, watchedPlugin, sensitivePlugin, pageFilesPlugin];
