// The Commit status part of a run page (<div id="run-cstatus">): the code host the run reports
// to, the newest state and what became of it (sent, pending with the next try, failed with
// the host's message) and every attempt. run.js calls runCommitStatusPanel(id) once; it polls
// while the run is unfinished or the report is pending, and stays hidden when the run reports
// none.
function runCommitStatusPanel(id) {
  const root = $('#run-cstatus');
  if (!root) return;
  const body = $('#run-cstatus-body', root);
  const BADGE = { sent: 'success', failed: 'failed', pending: 'queued' };
  function attemptText(a) {
    const what = a.status_code ? 'HTTP ' + a.status_code : 'no answer';
    return a.state + ': ' + what + (a.error ? ' · ' + a.error : '') + ' · ' + durationText(a.duration_ms);
  }
  function draw(c) {
    root.hidden = !c;
    if (!c) return;
    const open = !!$('details[open]', body); // kept across redraws
    const meta = [c.state + ' → ' + (c.host || 'host') + ' ' + c.repo + '@' + c.sha.slice(0, 12)];
    if (c.sent_state && c.sent_state !== c.state) meta.push('the host shows ' + c.sent_state);
    if (c.status === 'pending' && c.next_attempt_at) meta.push('next ' + new Date(c.next_attempt_at).toLocaleTimeString());
    empty(body).append(...[
      h('div', { class: 'notify-head' },
        h('span', { class: 'badge s-' + (BADGE[c.status] || 'queued'), id: 'run-cstatus-status' }, c.status),
        h('span', { class: 'small' }, c.context)),
      h('div', { class: 'muted small', id: 'run-cstatus-meta' }, meta.join(' · ')),
      c.status !== 'sent' && c.last_error ? h('div', { class: 'notify-err small', id: 'run-cstatus-error' }, c.last_error) : null,
      c.history.length ? h('details', { class: 'notify-attempts', open },
        h('summary', { class: 'small' }, c.history.length + (c.history.length === 1 ? ' attempt' : ' attempts')),
        h('ol', {}, c.history.map(a => h('li', { class: 'small' }, when(a.started_at), ' · ', attemptText(a))))) : null,
    ].filter(Boolean));
  }
  async function load() {
    const r = await api('GET', '/api/v1/runs/' + encodeURIComponent(id) + '/commit-status');
    if (!r.ok) return;
    const c = r.data.commit_status;
    draw(c);
    const ended = runShownEnded();
    if (c && (!ended || c.status === 'pending' || !TERMINAL[c.state])) setTimeout(load, 3000);
  }
  load();
}
