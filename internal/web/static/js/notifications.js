// The Notifications list of a run page (<div id="run-notify">): each notify target of the
// run's pipeline that wants how the run ended, its status (pending, delivered, failed) and
// every attempt. run.js calls runNotificationsPanel(id) once; it polls while the run is
// unfinished or a notification is pending, and stays hidden while there is none.
function runNotificationsPanel(id) {
  const root = $('#run-notify');
  if (!root) return;
  const list = $('#run-notify-list', root);
  const BADGE = { delivered: 'success', failed: 'failed', pending: 'queued' };
  function attemptText(a) {
    const what = a.status_code ? 'HTTP ' + a.status_code : 'no answer';
    return what + (a.error && !a.status_code ? ': ' + a.error : '') + ' · ' + durationText(a.duration_ms);
  }
  function draw(ns) {
    root.hidden = !ns.length;
    const open = new Set($$('details[open]', list).map(d => d.dataset.id)); // kept across redraws
    empty(list);
    for (const n of ns) {
      const last = n.history.length ? n.history[n.history.length - 1] : null;
      const meta = [n.attempts + (n.attempts === 1 ? ' attempt' : ' attempts')];
      if (n.signed) meta.push('signed');
      if (n.status === 'pending' && n.next_attempt_at) meta.push('next ' + new Date(n.next_attempt_at).toLocaleTimeString());
      list.append(h('li', { class: 'notify-item' },
        h('div', { class: 'notify-head' },
          h('span', { class: 'badge s-' + (BADGE[n.status] || 'queued') }, n.status),
          h('code', { class: 'notify-url', title: n.url }, n.url)),
        h('div', { class: 'muted small' }, meta.join(' · ')),
        last && last.error ? h('div', { class: 'notify-err small' }, last.error) : null,
        n.history.length ? h('details', { class: 'notify-attempts', 'data-id': String(n.id), open: open.has(String(n.id)) },
          h('summary', { class: 'small' }, 'Attempts'),
          h('ol', {}, n.history.map(a => h('li', { class: 'small' }, when(a.started_at), ' · ', attemptText(a))))) : null));
    }
  }
  async function load() {
    const r = await api('GET', '/api/v1/runs/' + encodeURIComponent(id) + '/notifications');
    if (!r.ok) return;
    const ns = r.data.notifications || [];
    draw(ns);
    const ended = runShownEnded();
    // An ended run's notifications are planned within seconds; pending ones change until delivered.
    if (!ended || ns.some(n => n.status === 'pending') || (!ns.length && ++emptyPolls < 5)) setTimeout(load, 3000);
  }
  let emptyPolls = 0;
  load();
}

// runShownEnded reports whether the run page's status badge (kept current by run.js) shows an
// end: the run page's panels stop polling then.
function runShownEnded() {
  const st = $('#run-status');
  return !!st && Object.keys(TERMINAL).some(s => st.classList.contains('s-' + s));
}
