// A pipeline's webhook deliveries (/pipelines/NAME/deliveries): the trace, Redeliver, Dry run.
pages.deliveries = async function () {
  const root = $('#deliveries');
  const name = root.dataset.name;
  const tb = $('#dl-list tbody');
  const detail = $('#dl-detail');
  let before = null, selected = null, shown = 0; // shown: pages of the list shown
  // refresh reads the list again, as many pages as shown (the button, and the event stream
  // when a delivery was recorded, on this server or another).
  const refresh = liveReload(async () => {
    const keep = shown;
    await load(false);
    while (shown < keep && before) await load(true);
  });
  async function load(more) {
    shown = more ? shown + 1 : 1;
    const q = new URLSearchParams({ limit: '30' });
    if (more && before) q.set('before', before);
    const r = await api('GET', '/api/v1/pipelines/' + encodeURIComponent(name) + '/deliveries?' + q);
    if (!more) empty(tb);
    if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 4 }, errText(r)))); return; }
    before = r.data.next_before;
    $('#dl-older').disabled = !before;
    if (!more && !r.data.deliveries.length) tb.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No deliveries yet. Requests to the webhook URL show here.')));
    for (const d of r.data.deliveries) {
      const okish = d.status_code < 300;
      const row = h('tr', { 'data-id': d.id, class: d.id === selected ? 'selected' : null },
        h('td', {}, when(d.received_at), h('span', { class: 'sub' }, '#' + d.id + (d.remote_addr ? ' · ' + d.remote_addr : ''))),
        h('td', {}, h('span', { class: 'badge ' + (okish ? 's-success' : d.status_code === 429 ? 's-queued' : 's-failed') }, h('span', { 'aria-hidden': 'true' }, okish ? '✓' : '✗'), ' ' + d.status_code),
          d.error_code ? h('span', { class: 'sub' }, d.error_code) : null,
          d.dry_run ? h('span', { class: 'sub' }, 'dry run') : null,
          d.redelivery_of ? h('span', { class: 'sub' }, 'redelivery of #' + d.redelivery_of) : null,
          d.replay_of ? h('span', { class: 'sub' }, 'replay of #' + d.replay_of) : null),
        h('td', {}, d.run_id ? runLink(d.run_id, d.run_number) : h('span', { class: 'muted' }, '—')),
        h('td', {}, h('button', { type: 'button', class: 'btn small', onclick: () => show(d.id, true) }, 'Details')));
      tb.append(row);
    }
  }
  // show opens a delivery's details. Opening the one already open (or being fetched) does
  // nothing, and only the newest request renders: a slow answer can never replace the panel
  // (and its buttons) under the user's hand.
  let shownSeq = 0;
  async function show(id, fromClick) {
    if (id === selected) { if (fromClick) reveal(); return; }
    selected = id;
    const seq = ++shownSeq;
    $$('#dl-list tr').forEach(tr => tr.classList.toggle('selected', tr.dataset.id === String(id)));
    const r = await api('GET', '/api/v1/deliveries/' + id);
    if (seq !== shownSeq) return;
    empty(detail);
    if (!r.ok) { selected = null; detail.append(h('p', { class: 'alert error' }, errText(r))); return; }
    const d = r.data;
    const redeliver = h('button', { type: 'button', class: 'btn', id: 'dl-redeliver' }, '↻ Redeliver');
    const dry = h('button', { type: 'button', class: 'btn ghost', id: 'dl-dryrun' }, 'Dry run');
    const result = h('div', { id: 'dl-result', 'aria-live': 'polite' });
    redeliver.addEventListener('click', async () => {
      if (!confirm('Deliver #' + d.id + ' again? It runs through today\'s trigger and may start a run.')) return;
      busy(redeliver, true);
      const rr = await api('POST', '/api/v1/deliveries/' + d.id + '/redeliver');
      busy(redeliver, false);
      hookOutcome(result, rr, 'Redelivered');
      await load(false);
    });
    dry.addEventListener('click', async () => {
      busy(dry, true);
      const ct = headerValue(d.headers, 'Content-Type') || 'application/json';
      const rr = await api('POST', '/api/v1/pipelines/' + encodeURIComponent(name) + '/triggers/webhook/dry-run', d.body, { headers: { 'Content-Type': ct } });
      busy(dry, false);
      hookOutcome(result, rr, 'Dry run');
      await load(false);
    });
    const trace = Array.isArray(d.trace) ? d.trace : [];
    detail.append(
      h('div', { class: 'cardhead' }, h('h2', { tabindex: '-1', id: 'dl-heading' }, 'Delivery #' + d.id), h('div', { class: 'actions' }, redeliver, dry)),
      result,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Received'), h('dd', {}, new Date(d.received_at).toLocaleString(), d.remote_addr ? ' from ' + d.remote_addr : ''),
        h('dt', {}, 'Answer'), h('dd', {}, String(d.status_code), d.error_code ? ' ' + d.error_code : ''),
        h('dt', {}, 'Run'), h('dd', {}, d.run_id ? runLink(d.run_id, d.run_number) : '—')),
      h('h3', {}, 'Decision trace'),
      traceSteps(trace),
      h('h3', {}, 'Answer'),
      h('pre', { class: 'box' }, JSON.stringify(d.response, null, 2)),
      h('h3', {}, 'Headers'),
      h('pre', { class: 'box' }, Object.entries(d.headers || {}).map(([k, v]) => k + ': ' + [].concat(v).join(', ')).join('\n')),
      h('h3', {}, 'Body' + (d.body_truncated ? ' (cut at the size limit)' : '')),
      h('pre', { class: 'box', id: 'dl-body' }, pretty(d.body)));
    // In one column (a phone) the details are under the list: bring them into view. The
    // heading takes the focus, so a screen reader and the keyboard go on from there.
    if (fromClick) reveal();
  }
  function reveal() {
    const heading = $('#dl-heading');
    if (heading) heading.focus({ preventScroll: true });
    if (matchMedia('(max-width: 860px)').matches) detail.scrollIntoView({ block: 'start' });
  }
  function headerValue(hs, name) {
    for (const [k, v] of Object.entries(hs || {})) if (k.toLowerCase() === name.toLowerCase()) return [].concat(v)[0];
    return '';
  }
  function pretty(body) {
    try { return JSON.stringify(JSON.parse(body), null, 2); } catch (e) { return body || ''; }
  }
  $('#dl-refresh').addEventListener('click', () => refresh());
  $('#dl-older').addEventListener('click', () => load(true));
  await refresh();
  liveStream({ pipeline: name }, { deliveries: refresh, reconnect: refresh });
  const first = $('#dl-list tr[data-id]');
  if (first && matchMedia('(min-width: 861px)').matches) show(Number(first.dataset.id));
};
