// ---- run page ----------------------------------------------------------------------------
// The log viewer is logview.js.
pages.run = async function () {
  const root = $('#run');
  const id = root.dataset.id;
  const pipeline = root.dataset.pipeline;
  const canRun = root.dataset.canRun === 'true';
  let run = null, pollTimer = null;

  function drawRun() {
    const st = $('#run-status');
    st.className = 'badge s-' + run.status;
    empty(st).append(h('span', { 'aria-hidden': 'true' }, ICON[run.status] || '•'), ' ' + run.status);
    document.title = (ICON[run.status] || '') + ' ' + pipeline + ' #' + run.number + ' · flowd';
    setFavicon(run.status);
    const trig = empty($('#run-trigger'));
    trig.append(triggerText(run), ' · ', when(run.created_at));
    if (run.started_at) trig.append(' · ', h('span', { class: 'dur', id: 'run-duration' }, duration(run.started_at, run.finished_at)));
    trig.append(' · revision ' + run.revision);
    if (run.concurrency_group) trig.append(' · group ', h('code', { id: 'run-group' }, run.concurrency_group));
    const gl = $('#run-git');
    if (gl) {
      const parts = gitParts(run.git, false);
      gl.hidden = !parts.length;
      empty(gl).append(...parts);
    }
    const msg = $('#run-message');
    msg.hidden = !run.message;
    msg.textContent = run.message || '';
    msg.className = 'alert' + (run.status === 'failed' ? ' error' : run.status === 'canceled' ? ' warn' : '');
    const cancel = $('#run-cancel');
    if (cancel) {
      cancel.hidden = !!TERMINAL[run.status];
      if (run.cancel_requested) { cancel.disabled = true; cancel.textContent = 'Canceling…'; }
    }
    const ol = empty($('#stages'));
    for (const sg of run.stages) {
      const jobs = sg.jobs.map((j) => {
        const steps = j.steps.map((s, i) => {
          const exit = s.exit_code !== null && s.exit_code !== undefined ? ' · exit ' + s.exit_code : '';
          return h('li', { class: 'step', title: s.name + ' · ' + s.status + exit },
            h('a', { class: 'name', href: '#J' + j.id + '-S' + (i + 1), onclick: stepLink }, icon(s.status), ' ', h('span', { class: 'sname' }, s.name)),
            h('span', { class: 'dur' }, s.status === 'failed' && s.exit_code ? 'exit ' + s.exit_code + ' · ' : '', duration(s.started_at, s.finished_at)));
        });
        // Who ran it: one line per attempt (a job whose runner was lost may have several).
        const attempts = (j.attempts || []).map(a => 'attempt ' + a.number + ' on ' + a.runner + ': ' + a.state + (a.reason ? ' (' + a.reason + ')' : ''));
        const badge = (j.attempts || []).length > 1 ? h('span', { class: 'attempt', title: attempts.join('\n') }, ' · attempt ' + j.attempt) : '';
        const image = jobImage(j);
        return h('li', { class: 'job', title: attempts.join('\n') + (j.message ? '\n' + j.message : '') },
          h('div', { class: 'job-name' }, h('a', { href: '#J' + j.id, onclick: stepLink }, icon(j.status), ' ', j.name), image, jobLabels(j), badge, h('span', { class: 'dur' }, duration(j.started_at, j.finished_at))),
          j.waiting ? h('div', { class: 'waiting muted' }, j.waiting) : null,
          h('ol', {}, steps));
      });
      ol.append(h('li', {},
        h('div', { class: 'stage-name' }, h('span', {}, icon(sg.status), ' ', sg.name), h('span', { class: 'sr' }, sg.status)),
        h('ol', {}, jobs)));
    }
    const vt = empty($('#run-vars tbody'));
    const keys = Object.keys(run.variables || {}).sort();
    if (!keys.length && !secretNames.length) vt.append(h('tr', {}, h('td', { class: 'muted' }, 'No variables.')));
    for (const k of keys) vt.append(h('tr', {}, h('td', {}, h('code', {}, k)), h('td', {}, h('code', {}, run.variables[k]))));
    if (secretNames.length) for (const k of secretNames) vt.append(h('tr', {}, h('td', {}, h('code', {}, k)), h('td', { class: 'muted', title: 'secret values are never shown' }, '•••• secret')));
  }
  let secretNames = [];
  async function refresh() {
    const r = await api('GET', '/api/v1/runs/' + id);
    if (r.ok) {
      run = r.data;
      drawRun(); drawLog();
    }
    clearTimeout(pollTimer);
    if (!run || !TERMINAL[run.status]) pollTimer = setTimeout(refresh, 1500);
  }
  api('GET', '/api/v1/pipelines/' + encodeURIComponent(pipeline)).then(r => {
    if (r.ok) { secretNames = r.data.variables.filter(v => v.secret).map(v => v.name); if (run) drawRun(); }
  });

  if (canRun) {
    $('#run-cancel').addEventListener('click', async (e) => {
      const b = e.currentTarget;
      if (!confirm('Cancel run #' + run.number + ' of ' + pipeline + '? Its running steps are stopped.')) return;
      b.disabled = true; b.textContent = 'Canceling…';
      const r = await api('POST', '/api/v1/runs/' + id + '/cancel');
      if (!r.ok) { toast(errText(r), true); b.disabled = false; b.textContent = 'Cancel run'; }
      else toast(r.data.status === 'canceling' ? 'Canceling: its running steps are being stopped' : 'Run canceled');
      refresh();
    });
    $('#run-rerun').addEventListener('click', async (e) => {
      const b = e.currentTarget;
      if (!run) return;
      busy(b, true);
      const r = await api('POST', '/api/v1/pipelines/' + encodeURIComponent(pipeline) + '/runs', { variables: run.variables || {} });
      busy(b, false);
      if (r.ok) location.href = '/runs/' + r.data.run.id; else toast('Not started: ' + errText(r), true);
    });
  }

  // the log (logview.js): sections per job, groups per step, only the lines near the screen drawn
  const box = $('#log');
  const state = $('#log-state');
  const followBtn = $('#log-follow');
  const tsBtn = $('#log-ts');
  const model = logModel();
  let tsOn = false;
  try { tsOn = localStorage.getItem('flowd.log.timestamps') === '1'; } catch (e) { /* storage off */ }
  tsBtn.setAttribute('aria-pressed', String(tsOn));
  const view = logView(box, model, {
    timestamps: tsOn,
    onFollow: (on) => { followBtn.hidden = on || !run || !!TERMINAL[run.status]; },
  });
  tsBtn.addEventListener('click', () => {
    tsOn = !tsOn;
    tsBtn.setAttribute('aria-pressed', String(tsOn));
    try { localStorage.setItem('flowd.log.timestamps', tsOn ? '1' : '0'); } catch (e) { /* storage off */ }
    view.timestamps(tsOn);
  });
  followBtn.addEventListener('click', () => view.setFollow(true));
  function stepLink(e) {
    const hash = e.currentTarget.getAttribute('href');
    if (!/^#J\d+-S\d+$/.test(hash) && !/^#J\d+$/.test(hash)) return;
    e.preventDefault();
    history.replaceState(null, '', hash);
    if (/-S/.test(hash)) view.jump(hash);
    else { view.setFollow(false); const sec = document.getElementById(hash.slice(1)); if (sec) sec.scrollIntoView({ block: 'start' }); }
  }
  window.addEventListener('hashchange', () => view.jump(location.hash));

  // search: a count, Enter/↓ for the next match, Shift+Enter/↑ for the one before
  const search = $('#log-search'), count = $('#log-count');
  let searchTimer = 0;
  function runSearch() {
    clearTimeout(searchTimer);
    const q = search.value;
    const n = view.search(q);
    showCount(q, n);
  }
  function showCount(q, n) {
    count.textContent = !q ? '' : n ? (view.cur + 1) + ' of ' + n : 'no match';
  }
  search.addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 200); });
  search.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    if (searchTimer || view.query !== search.value) { runSearch(); return; }
    view.step(e.shiftKey ? -1 : 1); showCount(view.query, view.matches.length);
  });
  $('#log-next').addEventListener('click', () => { if (view.query !== search.value) runSearch(); else view.step(1); showCount(view.query, view.matches.length); });
  $('#log-prev').addEventListener('click', () => { if (view.query !== search.value) runSearch(); else view.step(-1); showCount(view.query, view.matches.length); });

  // downloads: the whole run and each job, plain or with the colour codes
  function drawDownloads() {
    const base = '/api/v1/runs/' + id + '/log?download=1';
    const links = (q, what) => [
      h('a', { href: base + q + '&ansi=0', download: '', class: 'dl-plain' }, 'plain text'),
      h('a', { href: base + q, download: '', class: 'dl-ansi' }, 'with colour codes')].map(a => { a.setAttribute('aria-label', what + ', ' + a.textContent); return a; });
    const list = empty($('#log-dl-list'));
    list.append(h('li', {}, h('span', {}, 'Whole run'), ...links('', 'Whole run')));
    for (const sg of run.stages) for (const j of sg.jobs) {
      list.append(h('li', {}, h('span', { class: 'jname', title: j.name }, j.name), ...links('&job=' + j.id, 'Job ' + j.name)));
    }
  }

  // the run's status, said once when it changes (the lines themselves are not announced)
  let said = '';
  function announce() {
    if (said && said !== run.status) $('#run-announce').textContent = 'Run #' + run.number + ' ' + run.status;
    said = run.status;
  }
  function drawLog() {
    view.setRun(run);
    if (TERMINAL[run.status]) { view.setFollow(false); followBtn.hidden = true; }
    else followBtn.hidden = view.follow;
    if (!$('#log-dl-list').firstChild) drawDownloads();
    if (run.status === 'queued') state.textContent = 'queued';
    else if (!TERMINAL[run.status] && state.textContent === 'queued') state.textContent = '● live';
    announce();
  }

  // The log as ndjson chunks: a stream cut short resumes after the last chunk it had.
  let after = 0, retry = 0;
  async function stream() {
    let res;
    try {
      res = await fetch('/api/v1/runs/' + id + '/log?format=ndjson&follow=1' + (after ? '&after=' + after : ''), { credentials: 'same-origin' });
    } catch (e) { return again(); }
    if (!res.ok) {
      // 410: the retention sweep deleted the log; the answer says when and why.
      let msg = '';
      try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
      view.fail(msg || 'The log cannot be read (' + res.status + ').');
      state.textContent = res.status === 410 ? 'log expired' : 'the log cannot be read (' + res.status + ')';
      return;
    }
    const ndjson = (res.headers.get('Content-Type') || '').indexOf('ndjson') >= 0;
    if (run && run.status !== 'queued') state.textContent = TERMINAL[run.status] ? 'loading…' : '● live';
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '', ended = false;
    // A server without ndjson sends the text: it all goes to the run's one job, or to the run.
    const jobs = run ? run.stages.flatMap(sg => sg.jobs) : [];
    const textJob = jobs.length === 1 ? jobs[0].id : 0;
    // take reads one line of the answer; a long backlog is read in slices of a few
    // milliseconds (a chunk may hold thousands of lines), so the page stays responsive.
    let t0 = performance.now();
    async function take(line) {
      if (!ndjson) { logFeed(model, { job_id: textJob, at: '', data: line + '\n' }); return; }
      if (!line) return;
      let c;
      try { c = JSON.parse(line); } catch (e) { return; }
      if (c.ping) return;
      if ('end' in c) { ended = !!c.end; return; }
      if (c.seq <= after) return;
      after = c.seq;
      const data = String(c.data || '');
      for (let i = 0; i < data.length; i += 16384) {
        logFeed(model, { job_id: c.job_id, at: c.at, data: data.slice(i, i + 16384) });
        if (performance.now() - t0 > 8) {
          view.changed();
          await (window.scheduler && scheduler.yield ? scheduler.yield() : new Promise(r => setTimeout(r, 0)));
          t0 = performance.now();
        }
      }
    }
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        t0 = performance.now();
        buf += value;
        let i, start = 0;
        while ((i = buf.indexOf('\n', start)) >= 0) { await take(buf.slice(start, i)); start = i + 1; }
        buf = buf.slice(start);
        retry = 0;
        view.changed();
      }
    } catch (e) { return again(); }
    if (buf) await take(buf);
    if (ndjson && !ended) return again();
    logFinish(model);
    view.ended = true;
    view.flush();
    state.textContent = 'finished';
    refresh();
  }
  function again() {
    state.textContent = 'disconnected; retrying…';
    setTimeout(stream, Math.min(10000, 1000 * 2 ** retry++));
  }
  await refresh();
  runNotificationsPanel(id);
  runCommitStatusPanel(id);
  if (location.hash) view.jump(location.hash);
  else if (!TERMINAL[run.status]) view.setFollow(true);
  stream();
};
