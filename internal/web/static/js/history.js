// The run history of a pipeline page (<section id="runs">): filters, pages, the total, "Go to
// run #N", kept live by the event stream. The page and the filters are in the URL (?status=,
// ?trigger=, ?before=N: the runs below #N), so Back from a run returns to the same page.
// pipeline.js calls runHistory(name, canRun) once the page is drawn.
function runHistory(name, canRun) {
  const base = '/api/v1/pipelines/' + encodeURIComponent(name);
  const PAGE = 20;
  const filters = $('#run-filters');
  const jump = $('#run-jump');
  // The befores of the newer pages walked through, so Newer goes back one page; kept in the
  // history entry's state beside whatever else the page keeps there.
  let state = fromURL(), newerPages = [], nextBefore = null, mark = 0;
  function fromURL() {
    const q = new URLSearchParams(location.search);
    return { status: q.get('status') || '', trigger: q.get('trigger') || '', before: Number(q.get('before')) || 0 };
  }
  function go(next, pages) {
    state = next;
    newerPages = pages;
    const q = new URLSearchParams(location.search);
    for (const k of ['status', 'trigger', 'before']) {
      if (state[k]) q.set(k, state[k]); else q.delete(k);
    }
    const url = location.pathname + (q.toString() ? '?' + q : '') + location.hash;
    history.pushState(Object.assign({}, history.state, { runPages: newerPages }), '', url);
    return load();
  }
  function showFilters() {
    filters.status.value = state.status;
    filters.trigger.value = state.trigger;
  }
  window.addEventListener('popstate', () => {
    const next = fromURL();
    if (next.status === state.status && next.trigger === state.trigger && next.before === state.before) return;
    state = next;
    newerPages = (history.state && history.state.runPages) || [];
    mark = 0;
    showFilters();
    load();
  });
  const load = liveReload(async () => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (state.before) q.set('before', state.before);
    if (state.status) q.set('status', state.status);
    if (state.trigger) q.set('trigger', state.trigger);
    const r = await api('GET', base + '/runs?' + q);
    const tb = empty($('#run-list tbody'));
    const total = $('#runs-total');
    if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 5 }, errText(r)))); total.textContent = ''; return; }
    const runs = r.data.runs, filtered = state.status || state.trigger;
    nextBefore = r.data.next_before;
    $('#runs-older').disabled = !nextBefore;
    $('#runs-newer').disabled = !state.before;
    $('#runs-newest').disabled = !state.before;
    const from = (r.data.newer || 0) + 1;
    total.textContent = runs.length
      ? 'Runs ' + from + '–' + (from + runs.length - 1) + ' of ' + r.data.total + (filtered ? ' matching' : '')
      : (r.data.total ? r.data.total + (filtered ? ' matching runs' : ' runs') : '');
    if (!runs.length) tb.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, filtered ? 'No runs match these filters.' : state.before ? 'No runs on this page.' : 'No runs yet.')));
    if (!state.before && !filtered && runs.length) setFavicon(runs[0].status);
    for (const run of runs) {
      tb.append(h('tr', { 'data-number': run.number, class: run.number === mark ? 'hit' : null },
        h('td', {}, badge(run.status), run.waiting ? h('span', { class: 'sub' }, run.waiting) : null),
        h('td', {}, h('a', { href: '/runs/' + run.id }, '#' + run.number)),
        h('td', {}, triggerText(run), run.git && run.git.commit_sha ? h('span', { class: 'sub gitline' }, gitParts(run.git, true)) : null),
        h('td', { class: 'hide-sm' }, when(run.started_at || run.created_at)),
        h('td', { class: 'dur' }, run.started_at ? duration(run.started_at, run.finished_at) : '')));
    }
  });
  filters.addEventListener('change', () => {
    mark = 0;
    go({ status: filters.status.value, trigger: filters.trigger.value, before: 0 }, []);
  });
  $('#runs-older').addEventListener('click', () => {
    if (!nextBefore) return;
    mark = 0;
    go(Object.assign({}, state, { before: nextBefore }), newerPages.concat([state.before]));
  });
  $('#runs-newer').addEventListener('click', () => {
    // Without the pages walked (a link opened here), Newer goes to the newest page.
    mark = 0;
    const pages = newerPages.slice(0, -1);
    go(Object.assign({}, state, { before: newerPages.length ? newerPages[newerPages.length - 1] : 0 }), pages);
  });
  $('#runs-newest').addEventListener('click', () => {
    mark = 0;
    go(Object.assign({}, state, { before: 0 }), []);
  });
  // Go to run #N: the page that starts with it, filters cleared, the run marked.
  jump.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = Number(jump.number.value);
    if (!Number.isInteger(n) || n < 1) { jump.number.focus(); toast('Type a run number, such as 12', true); return; }
    mark = n;
    const done = go({ status: '', trigger: '', before: n + 1 }, []);
    showFilters();
    await done;
    const row = $('#run-list tr[data-number="' + n + '"]');
    if (!row) { toast('No run #' + n + ' in ' + name + '; the runs below it are shown', true); return; }
    $('a', row).focus();
  });
  newerPages = (history.state && history.state.runPages) || [];
  showFilters();
  load();
  liveStream({ pipeline: name }, { runs: load, reconnect: load });
}
