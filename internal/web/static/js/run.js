// ---- run page ----------------------------------------------------------------------------
// parseANSI turns one line with SGR escape sequences into spans; other escapes are dropped.
function ansiLine(text, st) {
  const out = [];
  const re = /\x1b\[([0-9;]*)([A-Za-z])/g;
  let last = 0, m;
  function push(s) {
    if (!s) return;
    const cls = [];
    if (st.b) cls.push('a-b'); if (st.d) cls.push('a-d'); if (st.i) cls.push('a-i'); if (st.u) cls.push('a-u');
    if (typeof st.fg === 'number') cls.push('f' + st.fg);
    if (typeof st.bg === 'number') cls.push('b' + st.bg);
    if (!cls.length && !st.fgc && !st.bgc) { out.push(s); return; }
    const span = h('span', { class: cls.join(' ') || null }, s);
    if (st.fgc) span.style.color = st.fgc;
    if (st.bgc) span.style.backgroundColor = st.bgc;
    out.push(span);
  }
  while ((m = re.exec(text))) {
    push(text.slice(last, m.index));
    last = re.lastIndex;
    if (m[2] !== 'm') continue;
    const codes = m[1] === '' ? [0] : m[1].split(';').map(Number);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) { for (const k of Object.keys(st)) delete st[k]; }
      else if (c === 1) st.b = 1; else if (c === 2) st.d = 1; else if (c === 3) st.i = 1; else if (c === 4) st.u = 1;
      else if (c === 22) { delete st.b; delete st.d; } else if (c === 23) delete st.i; else if (c === 24) delete st.u;
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) { st.fg = c; delete st.fgc; }
      else if (c === 39) { delete st.fg; delete st.fgc; }
      else if ((c >= 40 && c <= 47)) { st.bg = c; delete st.bgc; }
      else if (c >= 100 && c <= 107) { st.bg = c - 60; delete st.bgc; }
      else if (c === 49) { delete st.bg; delete st.bgc; }
      else if (c === 38 || c === 48) {
        let color = null;
        if (codes[i + 1] === 5) { color = xterm(codes[i + 2]); i += 2; }
        else if (codes[i + 1] === 2) { color = 'rgb(' + codes[i + 2] + ',' + codes[i + 3] + ',' + codes[i + 4] + ')'; i += 4; }
        if (color) { if (c === 38) { st.fgc = color; delete st.fg; } else { st.bgc = color; delete st.bg; } }
      }
    }
  }
  push(text.slice(last).replace(/\x1b[^a-zA-Z]*[a-zA-Z]?/g, ''));
  return out;
}
function xterm(n) {
  const base = ['#000', '#cd3131', '#0dbc79', '#e5e510', '#2472c8', '#bc3fbc', '#11a8cd', '#e5e5e5',
    '#666', '#f14c4c', '#23d18b', '#f5f543', '#3b8eea', '#d670d6', '#29b8db', '#fff'];
  if (n < 16) return base[n];
  if (n < 232) { n -= 16; const v = x => (x ? x * 40 + 55 : 0); return 'rgb(' + v(Math.floor(n / 36)) + ',' + v(Math.floor(n / 6) % 6) + ',' + v(n % 6) + ')'; }
  const g = (n - 232) * 10 + 8; return 'rgb(' + g + ',' + g + ',' + g + ')';
}

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
        const steps = j.steps.map((s) => {
          const exit = s.exit_code !== null && s.exit_code !== undefined ? ' · exit ' + s.exit_code : '';
          return h('li', { class: 'step', title: s.status + exit },
            h('span', { class: 'name' }, icon(s.status), ' ', s.name),
            h('span', { class: 'dur' }, s.status === 'failed' && s.exit_code ? 'exit ' + s.exit_code + ' · ' : '', duration(s.started_at, s.finished_at)));
        });
        // Who ran it: one line per attempt (a job whose runner was lost may have several).
        const attempts = (j.attempts || []).map(a => 'attempt ' + a.number + ' on ' + a.runner + ': ' + a.state + (a.reason ? ' (' + a.reason + ')' : ''));
        const badge = (j.attempts || []).length > 1 ? h('span', { class: 'attempt', title: attempts.join('\n') }, ' · attempt ' + j.attempt) : '';
        const image = jobImage(j);
        return h('li', { class: 'job', title: attempts.join('\n') + (j.message ? '\n' + j.message : '') },
          h('div', { class: 'job-name' }, h('span', {}, icon(j.status), ' ', j.name, image, jobLabels(j), badge), h('span', { class: 'dur' }, duration(j.started_at, j.finished_at))),
          j.waiting ? h('div', { class: 'waiting muted' }, j.waiting) : null,
          h('ol', {}, steps));
      });
      ol.append(h('li', {},
        h('div', { class: 'stage-name' }, h('span', {}, icon(sg.status), ' ', sg.name), h('span', { class: 'sr' }, sg.status)),
        h('ol', {}, jobs)));
    }
    const vt = empty($('#run-vars tbody'));
    const keys = Object.keys(run.variables || {}).sort();
    if (!keys.length) vt.append(h('tr', {}, h('td', { class: 'muted' }, 'No variables.')));
    for (const k of keys) vt.append(h('tr', {}, h('td', {}, h('code', {}, k)), h('td', {}, h('code', {}, run.variables[k]))));
    if (secretNames.length) for (const k of secretNames) vt.append(h('tr', {}, h('td', {}, h('code', {}, k)), h('td', { class: 'muted', title: 'secret values are never shown' }, '•••• secret')));
  }
  let secretNames = [];
  async function refresh() {
    const r = await api('GET', '/api/v1/runs/' + id);
    if (r.ok) { run = r.data; drawRun(); }
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

  // the live log
  const log = $('#log');
  const state = $('#log-state');
  const followBtn = $('#log-follow');
  let follow = !/^#L\d+$/.test(location.hash), n = 0, ansi = {}, pending = [], frame = 0;
  log.addEventListener('scroll', () => {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    if (atBottom !== follow) { follow = atBottom; followBtn.hidden = follow; }
  });
  followBtn.addEventListener('click', () => { follow = true; followBtn.hidden = true; log.scrollTop = log.scrollHeight; });
  function flush() {
    frame = 0;
    if (!pending.length) return;
    const frag = document.createDocumentFragment();
    for (const text of pending) {
      n++;
      const cr = text.lastIndexOf('\r');
      const t = cr >= 0 ? text.slice(cr + 1) : text;
      frag.append(h('div', { class: 'line', id: 'L' + n }, h('a', { class: 'ln', href: '#L' + n, 'aria-label': 'line ' + n }, String(n)), h('span', { class: 'tx' }, ansiLine(t, ansi))));
    }
    pending = [];
    const ph = $('.empty', log); if (ph) ph.remove();
    log.append(frag);
    if (follow) log.scrollTop = log.scrollHeight;
    highlight(false);
  }
  function addLine(text) { pending.push(text); if (!frame) frame = requestAnimationFrame(flush); }
  let jumped = false;
  function highlight(force) {
    const m = /^#L(\d+)$/.exec(location.hash);
    if (!m || (jumped && !force)) return;
    const el = document.getElementById('L' + m[1]);
    if (!el) return;
    $$('.line.hl', log).forEach(x => x.classList.remove('hl'));
    el.classList.add('hl');
    log.scrollTop = el.offsetTop - log.clientHeight / 3;
    jumped = true;
  }
  window.addEventListener('hashchange', () => { follow = false; followBtn.hidden = false; highlight(true); });
  async function stream() {
    state.textContent = 'connecting…';
    let res;
    try {
      res = await fetch('/api/v1/runs/' + id + '/log?follow=1', { credentials: 'same-origin' });
    } catch (e) { state.textContent = 'disconnected; retrying…'; setTimeout(restart, 3000); return; }
    if (!res.ok) {
      // 410: the retention sweep deleted the log; the answer says when and why.
      let msg = '';
      try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
      empty(log);
      log.append(h('div', { class: 'empty' }, msg || 'The log cannot be read (' + res.status + ').'));
      state.textContent = res.status === 410 ? 'log expired' : 'the log cannot be read (' + res.status + ')';
      return;
    }
    state.textContent = '● live';
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) { addLine(buf.slice(0, i)); buf = buf.slice(i + 1); }
      }
    } catch (e) { state.textContent = 'disconnected; retrying…'; setTimeout(restart, 3000); return; }
    if (buf) addLine(buf);
    flush();
    if (!n) log.append(h('div', { class: 'empty' }, 'This run wrote no log.'));
    state.textContent = 'finished';
    refresh();
  }
  function restart() { n = 0; ansi = {}; pending = []; empty(log); stream(); }
  log.append(h('div', { class: 'empty' }, 'Waiting for the first line…'));
  await refresh();
  stream();
};
