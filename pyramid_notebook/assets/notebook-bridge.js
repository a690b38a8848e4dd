/* pyramid_notebook: talk to a notebook shown in an iframe of the site's own page.
 *
 * Served by the package at <site>/pyramid_notebook/notebook-bridge.js (or copy this file).
 *
 *   <iframe id="notebook" src="..."></iframe>
 *   <script src="/pyramid_notebook/notebook-bridge.js"></script>
 *   <script>
 *     const frame = document.getElementById('notebook');
 *     PyramidNotebookBridge.save(frame, {timeout: 10000})
 *       .then(answer => console.log('saved', answer.path))   // now read it server-side
 *       .catch(error => console.log('not saved', error.message));
 *     PyramidNotebookBridge.listen(frame, message => {       // "dirty" / "saved" notices
 *       if (message.type === 'dirty') { ... }
 *     });
 *   </script>
 *
 * Requests go to the frame's exact origin (taken from its src), never "*", and only answers
 * from that origin and that frame's window are taken. The notebook answers only pages whose
 * origin pyramid_notebook.frame_ancestors allows.
 */
(function (global) {
  'use strict';
  var CHANNEL = 'pyramid_notebook';
  var counter = 0;

  function frameOrigin(frame) {
    return new URL(frame.src, global.location.href).origin;
  }

  /* Call callback(message) for every pyramid_notebook message from this frame; returns a
   * function that stops listening. */
  function listen(frame, callback) {
    function onMessage(event) {
      var data = event.data;
      if (event.source !== frame.contentWindow || event.origin !== frameOrigin(frame)) {
        return;
      }
      if (data && typeof data === 'object' && data.channel === CHANNEL) {
        callback(data);
      }
    }
    global.addEventListener('message', onMessage);
    return function () { global.removeEventListener('message', onMessage); };
  }

  /* Send {type: type} to the frame; resolve with its answer, reject on error or timeout. */
  function request(frame, type, options) {
    var timeout = (options && options.timeout) || 10000;
    var id = 'pn-' + Date.now() + '-' + (++counter);
    return new Promise(function (resolve, reject) {
      var timer = null;
      var stop = listen(frame, function (message) {
        if (message.id !== id) {
          return;
        }
        clearTimeout(timer);
        stop();
        if (message.type === 'error') {
          reject(new Error(message.message || 'The notebook could not do that.'));
        } else {
          resolve(message);
        }
      });
      timer = setTimeout(function () {
        stop();
        reject(new Error('The notebook did not answer within ' + timeout / 1000 + ' s ' +
                         '(is it still loading, or is this page not allowed to frame it?).'));
      }, timeout);
      frame.contentWindow.postMessage({ channel: CHANNEL, type: type, id: id }, frameOrigin(frame));
    });
  }

  global.PyramidNotebookBridge = {
    /* Save the notebook open in the frame; resolves with {type: "saved", path}. */
    save: function (frame, options) { return request(frame, 'save', options); },
    /* Resolves with {type: "status", path, dirty}: whether it has unsaved changes. */
    status: function (frame, options) { return request(frame, 'status', options); },
    listen: listen,
    request: request
  };
})(window);
