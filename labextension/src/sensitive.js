// "Why do you run this?" (issue 32, pyramid_notebook.audit_sensitive_reason = required): the notebook
// server refuses a cell matching the site's sensitive patterns unless its first line gives a reason,
// "# reason: <why>", answering with the error SensitiveCodeNeedsReason, whose text names what matched.
// When a cell fails so, this plugin asks the user for the reason in a dialog, writes it as the cell's
// first line (visible to team mates, kept in the notebook) and runs the cell again; the server records
// the reason with the cell. The server's check is what counts: this only makes answering it easy.
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { NotebookActions } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

/** The error name of the server's refusal (server/kernel_messages.py, NEEDS_REASON). */
const NEEDS_REASON = 'SensitiveCodeNeedsReason';
/** A reason line, as the server reads it: the cell's first line. */
const REASON_LINE = /^#\s*reason\s*:.*$/i;
/** Longest reason the server keeps (kernel_messages.REASON_MAX). */
const REASON_MAX = 2000;

class ReasonBody extends Widget {
  constructor(message) {
    const node = document.createElement('div');
    node.className = 'pyramid-notebook-sensitive';
    const intro = document.createElement('p');
    // textContent: the server's words (and the site's patterns) are shown as text, never as markup
    intro.textContent = message;
    const label = document.createElement('label');
    label.textContent = 'Your reason, recorded with the cell and written as its first line:';
    const input = document.createElement('input');
    input.type = 'text';
    input.id = 'pyramid-notebook-sensitive-reason';
    input.maxLength = REASON_MAX;
    input.placeholder = 'e.g. ticket 1234: remove the test accounts';
    input.style.width = '100%';
    label.appendChild(input);
    node.appendChild(intro);
    node.appendChild(label);
    super({ node });
    this.input = input;
  }

  getValue() {
    return this.input.value;
  }
}

/** The server's explanation without its "Refused: " prefix. */
function explanation(error) {
  const text = String(error.errorValue || '').replace(/^Refused:\s*/, '');
  return text || 'This cell matches code this site marks sensitive.';
}

/** The cell's source with ``reason`` as its first line (replacing a reason line already there). */
function withReason(source, reason) {
  const lines = source.replace(/^[\r\n]+/, '').split('\n');
  if (REASON_LINE.test(lines[0].trim())) {
    lines.shift();
  }
  return [`# reason: ${reason}`].concat(lines).join('\n');
}

async function askReason(notebook, cell, error) {
  const result = await showDialog({
    title: 'Why do you run this cell?',
    body: new ReasonBody(explanation(error)),
    focusNodeSelector: 'input',
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run with this reason' })]
  });
  // one line, as the server reads it
  const reason = String(result.value || '').split(/\s+/).filter(Boolean).join(' ').slice(0, REASON_MAX);
  if (!result.button.accept || !reason || cell.isDisposed || !notebook.model) {
    return;
  }
  cell.model.sharedModel.setSource(withReason(cell.model.sharedModel.getSource(), reason));
  const panel = notebook.parent;
  const sessionContext = panel && panel.sessionContext;
  if (typeof NotebookActions.runCells === 'function') {
    await NotebookActions.runCells(notebook, [cell], sessionContext);
  } else {
    notebook.activeCellIndex = notebook.widgets.indexOf(cell);
    notebook.deselectAll();
    await NotebookActions.run(notebook, sessionContext);
  }
}

export const sensitivePlugin = {
  id: 'pyramid-notebook-shutdown:sensitive-reason',
  description: 'Asks for the reason the site requires before a sensitive cell runs, and runs it with it.',
  autoStart: true,
  activate: () => {
    NotebookActions.executed.connect((_, { notebook, cell, success, error }) => {
      if (success || !error || error.errorName !== NEEDS_REASON) {
        return;
      }
      askReason(notebook, cell, error).catch((e) => console.error('pyramid_notebook: the reason dialog failed', e));
    });
  }
};
