// The Schedules panel of a pipeline page (<section id="schedules">): the current revision's
// schedules with their next fire times, and the newest fire times some server acted on — the
// run each started, or why none did. pipeline.js calls schedulesPanel(name) once the page is
// drawn; it reads again every minute while the page is shown (fire times are whole minutes).
function schedulesPanel(name) {
  const root = $('#schedules');
  if (!root) return;
  const body = $('#schedule-list', root);
  const fires = $('#fire-list tbody', root);
  const OUTCOME = { started: 'success', refused: 'failed', failed: 'failed' };
  // zoned shows an instant in the schedule's zone, with the zone's abbreviation.
  function zoned(iso, zone) {
    try {
      return new Date(iso).toLocaleString(undefined, { timeZone: zone, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
    } catch (e) {
      return new Date(iso).toLocaleString();
    }
  }
  async function load() {
    const r = await api('GET', '/api/v1/pipelines/' + encodeURIComponent(name) + '/schedules?limit=20');
    if (!r.ok) { empty(body).append(h('p', { class: 'muted' }, 'Schedules cannot be read: ' + errText(r))); return; }
    empty(body);
    if (!r.data.schedules.length) {
      body.append(h('p', { class: 'muted' }, 'No schedules. Add ', h('code', {}, 'schedules: [{cron: "0 3 * * 1-5", timezone: Europe/Berlin}]'),
        ' to the definition to run this pipeline on a timetable.'));
    }
    for (const sc of r.data.schedules) {
      const vars = Object.keys(sc.variables || {}).sort().map(k => k + '=' + sc.variables[k]).join(' ');
      body.append(h('div', { class: 'schedule' },
        h('div', { class: 'schedule-head' }, h('strong', {}, sc.name || sc.cron), sc.name ? h('code', {}, sc.cron) : null,
          h('span', { class: 'muted' }, sc.timezone), sc.branch ? h('span', { class: 'muted' }, 'branch ' + sc.branch) : null,
          vars ? h('code', { class: 'muted' }, vars) : null),
        h('div', { class: 'muted' }, 'Next: ', sc.next.length ? sc.next.map(t => zoned(t, sc.timezone)).join(' · ') : 'never')));
    }
    body.append(h('p', { class: 'muted small' }, 'Scheduled runs run as the user who saved the current revision. A fire time starts at most one run; after downtime the newest missed one runs once.'));
    empty(fires);
    if (!r.data.fires.length) fires.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'Nothing fired yet.')));
    for (const f of r.data.fires) {
      fires.append(h('tr', {},
        h('td', {}, h('time', { datetime: f.fire_at, title: new Date(f.fire_at).toLocaleString() }, new Date(f.fire_at).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }))),
        h('td', {}, f.schedule),
        h('td', {}, h('span', { class: 'badge s-' + (OUTCOME[f.outcome] || 'queued') }, f.outcome)),
        h('td', {}, f.run_id ? h('a', { href: '/runs/' + f.run_id }, '#' + f.run_number) : h('span', { class: 'why' }, f.message || ''))));
    }
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 60000);
}
