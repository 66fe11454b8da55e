// Pages that stay live: liveStream opens the server's event stream (GET /api/v1/events, see
// docs/api.md) and calls on[event](data) for each event, e.g. on.runs({pipeline}) when runs
// were created, started or ended. The events only say what changed; the page reads it again
// through the API. The browser reconnects by itself; a reconnect calls on.reconnect(), since
// events may have been missed meanwhile (so does a page shown again from the back/forward
// cache, or a tab shown again: a hidden tab closes its stream). query: {pipeline: NAME} or {}. While the stream is open, body[data-live] is "open"
// and the page's #live-mark, if any, shows.
function liveStream(query, on) {
  if (!window.EventSource) return;
  const q = new URLSearchParams(query || {}).toString();
  const mark = $('#live-mark');
  let es = null;
  function state(open) {
    document.body.dataset.live = open ? 'open' : 'closed';
    if (!mark) return;
    mark.hidden = false;
    mark.classList.toggle('off', !open);
    mark.title = open ? 'Live: this page changes as runs start and end' : 'Reconnecting…';
  }
  function connect(first) {
    es = new EventSource('/api/v1/events' + (q ? '?' + q : ''));
    let opened = first;
    es.addEventListener('open', () => {
      state(true);
      if (!opened && on.reconnect) on.reconnect();
      opened = false;
    });
    es.addEventListener('error', () => state(false));
    for (const name of Object.keys(on)) {
      if (name === 'reconnect') continue;
      es.addEventListener(name, (e) => {
        let data = {};
        try { data = JSON.parse(e.data || '{}'); } catch (err) { /* still: read again */ }
        on[name](data);
      });
    }
  }
  function close() { if (es) es.close(); es = null; }
  window.addEventListener('pagehide', close);
  window.addEventListener('pageshow', (e) => { if (e.persisted && !es) connect(false); });
  // A hidden tab lets go of its stream (browsers allow few connections to one server over
  // HTTP/1.1, and every open tab would hold one) and reads again when shown.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) { close(); state(false); } else if (!es) connect(false);
  });
  connect(true);
}

// liveReload wraps an async load so that calls never overlap: a call while one runs makes one
// more run after it, however many calls came (events come in bursts).
function liveReload(load) {
  let running = null, again = false;
  return async function reload() {
    if (running) { again = true; return running; }
    running = (async () => {
      try {
        do { again = false; await load(); } while (again);
      } finally { running = null; }
    })();
    return running;
  };
}
