// The pipelines list (/).
pages.pipelines = async function () {
  const tbody = $('#pipelines tbody');
  const search = $('#search');
  const toggle = $('#new-toggle');
  const panel = $('#new-pipeline');
  let ed;
  toggle.addEventListener('click', () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) {
      if (!ed) {
        ed = editor($('.editor', panel));
        ed.set('name: my-pipeline\ndescription: What it does\nvariables:\n  GREETING: "hello"\nstages:\n  - name: build\n    jobs:\n      - name: say\n        steps:\n          - name: echo\n            run: echo "$GREETING from flowd"\n');
        ed.validate();
      }
      $('#yaml').focus();
    }
  });
  if (draftGet(NEW_PIPELINE)) toggle.click(); // an edit kept when the session ended
  let list = null;
  // load reads the list again (at the start, and whenever the event stream says runs changed).
  const load = liveReload(async () => {
    const r = await api('GET', '/api/v1/pipelines');
    if (!r.ok) {
      if (!list) empty(tbody).append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, errText(r))));
      return;
    }
    list = r.data.pipelines || [];
    let newest = null;
    for (const p of list) {
      for (const run of [p.last_run].concat(p.running || [])) {
        if (run && (!newest || run.created_at > newest.created_at)) newest = run;
      }
    }
    if (newest) setFavicon(newest.status);
    draw();
  });
  function draw() {
    if (!list) return;
    const q = search.value.trim().toLowerCase();
    empty(tbody);
    const shown = list.filter(p => !q || p.name.includes(q) || (p.description || '').toLowerCase().includes(q));
    if (!list.length) {
      tbody.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No pipelines yet. Create one with “New pipeline” or `flowd pipeline apply -f`.')));
    } else if (!shown.length) {
      tbody.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No pipeline matches “' + search.value + '”.')));
    }
    for (const p of shown) {
      const lr = p.last_run;
      tbody.append(h('tr', { 'data-name': p.name },
        h('td', {}, badge(lr ? lr.status : 'none'), lr && lr.waiting ? h('span', { class: 'sub' }, lr.waiting) : null),
        h('td', {}, h('a', { href: '/pipelines/' + encodeURIComponent(p.name) }, h('strong', {}, p.name)), p.description ? h('span', { class: 'sub' }, p.description) : null),
        h('td', { class: 'lastrun' }, lr ? h('a', { href: '/runs/' + lr.id }, '#' + lr.number) : h('span', { class: 'muted' }, '—'), activeRuns(p)),
        h('td', { class: 'hide-sm' }, lr ? triggerText(lr) : ''),
        h('td', {}, lr ? when(lr.created_at) : '')));
    }
  }
  // activeRuns shows what runs now beside the newest run, which may have ended before them:
  // "▶ #12 running" for each running run (up to the API's few), and how many more run or wait.
  function activeRuns(p) {
    const all = p.running || [];
    const running = all.filter(run => !p.last_run || run.id !== p.last_run.id); // the newest shows already
    const more = (p.running_count || 0) - all.length;
    if (!running.length && !more && !p.queued_count) return null;
    return h('span', { class: 'sub active-runs' },
      running.map(run => h('a', { href: '/runs/' + run.id, class: 'running-run' }, h('span', { 'aria-hidden': 'true' }, '▶ '), '#' + run.number + ' running')),
      more > 0 ? h('span', { class: 'muted' }, '+' + more + ' running') : null,
      p.queued_count ? h('span', { class: 'muted queued-count' }, p.queued_count + ' queued') : null);
  }
  search.addEventListener('input', draw);
  await load();
  liveStream({}, { runs: load, reconnect: load });
};
