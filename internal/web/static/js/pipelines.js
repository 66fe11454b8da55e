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
  const r = await api('GET', '/api/v1/pipelines');
  if (!r.ok) { empty(tbody).append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, errText(r)))); return; }
  const list = r.data.pipelines || [];
  let newest = null;
  for (const p of list) {
    if (p.last_run && (!newest || p.last_run.created_at > newest.created_at)) newest = p.last_run;
  }
  if (newest) setFavicon(newest.status);
  function draw() {
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
        h('td', {}, badge(lr ? lr.status : 'none')),
        h('td', {}, h('a', { href: '/pipelines/' + encodeURIComponent(p.name) }, h('strong', {}, p.name)), p.description ? h('span', { class: 'sub' }, p.description) : null),
        h('td', {}, lr ? h('a', { href: '/runs/' + lr.id }, '#' + lr.number) : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'hide-sm' }, lr ? triggerText(lr) : ''),
        h('td', {}, lr ? when(lr.created_at) : '')));
    }
  }
  search.addEventListener('input', draw);
  draw();
};
