// The run history of a pipeline page (<section id="runs">): filters, paging.
// pipeline.js calls runHistory(name, canRun) once the page is drawn.
function runHistory(name, canRun) {
  const base = '/api/v1/pipelines/' + encodeURIComponent(name);
  const filters = $('#run-filters');
  let pages_ = [0], pageIdx = 0, nextBefore = null;
  async function loadRuns() {
    const q = new URLSearchParams({ limit: '20' });
    if (pages_[pageIdx]) q.set('before', pages_[pageIdx]);
    if (filters.status.value) q.set('status', filters.status.value);
    if (filters.trigger.value) q.set('trigger', filters.trigger.value);
    const r = await api('GET', base + '/runs?' + q);
    const tb = empty($('#run-list tbody'));
    if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 5 }, errText(r)))); return; }
    nextBefore = r.data.next_before;
    $('#runs-older').disabled = !nextBefore;
    $('#runs-newer').disabled = pageIdx === 0;
    if (!r.data.runs.length) tb.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, filters.status.value || filters.trigger.value ? 'No runs match these filters.' : 'No runs yet.')));
    if (pageIdx === 0 && !filters.status.value && !filters.trigger.value && r.data.runs.length) setFavicon(r.data.runs[0].status);
    for (const run of r.data.runs) {
      tb.append(h('tr', {},
        h('td', {}, badge(run.status)),
        h('td', {}, h('a', { href: '/runs/' + run.id }, '#' + run.number)),
        h('td', {}, triggerText(run), run.git && run.git.commit_sha ? h('span', { class: 'sub gitline' }, gitParts(run.git, true)) : null),
        h('td', { class: 'hide-sm' }, when(run.started_at || run.created_at)),
        h('td', { class: 'dur' }, run.started_at ? duration(run.started_at, run.finished_at) : '')));
    }
  }
  filters.addEventListener('change', () => { pages_ = [0]; pageIdx = 0; loadRuns(); });
  $('#runs-older').addEventListener('click', () => { pages_[pageIdx + 1] = nextBefore; pageIdx++; loadRuns(); });
  $('#runs-newer').addEventListener('click', () => { if (pageIdx > 0) { pageIdx--; loadRuns(); } });
  loadRuns();
}
