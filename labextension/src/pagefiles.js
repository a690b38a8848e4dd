// "Which files did this page load?" The site preloads them on the next cold click, while that
// user's server starts (pyramid_notebook/web/pagefiles.py). Resource Timing lists every file the
// page itself loaded, from the network or from the browser's cache, and never one only another page
// preloaded, so the site learns what a notebook page needs, not what it was given.
import { PageConfig } from '@jupyterlab/coreutils';

// The folders a page's files come from, below the notebook's base URL.
const FOLDERS = /^(static|lab\/extensions)\//;
// The page has settled when no file came for this long, or this long after its start at most.
const QUIET_MS = 2000;
const LONGEST_MS = 30000;

function pageFiles(base) {
  const files = [];
  for (const entry of performance.getEntriesByType('resource')) {
    const url = new URL(entry.name, window.location.href);
    if (url.origin === window.location.origin && url.pathname.startsWith(base)) {
      const path = url.pathname.slice(base.length) + url.search;
      if (FOLDERS.test(path) && !files.includes(path)) {
        files.push(path);
      }
    }
  }
  return files;
}

function settled(base) {
  return new Promise(resolve => {
    const started = performance.now();
    let count = -1;
    let since = started;
    const check = () => {
      const now = performance.now();
      const files = pageFiles(base);
      if (files.length !== count) {
        count = files.length;
        since = now;
      }
      if (now - since >= QUIET_MS || now - started >= LONGEST_MS) {
        resolve(files);
      } else {
        setTimeout(check, 250);
      }
    };
    check();
  });
}

export const pageFilesPlugin = {
  id: 'pyramid-notebook-shutdown:page-files',
  description: 'Tells the site which files this notebook page loaded, for the next cold visit to fetch early.',
  autoStart: true,
  activate: app => {
    const url = PageConfig.getOption('pyramidNotebookPageFilesUrl');
    const base = new URL(PageConfig.getBaseUrl(), window.location.href).pathname;
    const page = window.location.pathname.startsWith(base) ? window.location.pathname.slice(base.length) : '';
    if (!url || !page.startsWith('notebooks/')) {
      return;
    }
    // Chromium keeps 250 entries by default; a notebook page loads about 70 files and its API calls.
    performance.setResourceTimingBufferSize(1000);
    app.restored
      .then(() => settled(base))
      .then(files =>
        fetch(url, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ page, files })
        })
      )
      .catch(error => console.warn('pyramid_notebook: could not report the page files', error));
  }
};
