// ---- the run page's log: ANSI colours ------------------------------------------------------
// ansiLine turns one line with SGR escape sequences into text and spans; st is the colour state
// at the line's start and is left at its end. Other escapes are dropped.
function ansiLine(text, st) {
  const out = [];
  if (text.indexOf('\x1b]') >= 0) text = text.replace(ANSI_OSC, '');
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
    if (m[2] === 'm') ansiSGR(st, m[1]);
  }
  push(text.slice(last).replace(/\x1b[^a-zA-Z]*[a-zA-Z]?/g, ''));
  return out;
}
// ansiAdvance moves st over a line's escapes without building anything; it reports whether
// any colour or style is still on at the line's end.
function ansiAdvance(text, st) {
  const re = /\x1b\[([0-9;]*)m/g;
  let m;
  while ((m = re.exec(text))) ansiSGR(st, m[1]);
  for (const k in st) return true;
  return false;
}
// ansiStrip is the text without escape sequences (colours, OSC titles and links, others).
function ansiStrip(text) { return text.indexOf('\x1b') < 0 ? text : text.replace(ANSI_OSC, '').replace(/\x1b(\[[0-9;?]*[A-Za-z]|[^[])?/g, ''); }
const ANSI_OSC = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g;
// ansiSGR applies one "ESC [ params m" to st.
function ansiSGR(st, params) {
  const codes = params === '' ? [0] : params.split(';').map(Number);
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
function xterm(n) {
  const base = ['#000', '#cd3131', '#0dbc79', '#e5e510', '#2472c8', '#bc3fbc', '#11a8cd', '#e5e5e5',
    '#666', '#f14c4c', '#23d18b', '#f5f543', '#3b8eea', '#d670d6', '#29b8db', '#fff'];
  if (n < 16) return base[n];
  if (n < 232) { n -= 16; const v = x => (x ? x * 40 + 55 : 0); return 'rgb(' + v(Math.floor(n / 36)) + ',' + v(Math.floor(n / 6) % 6) + ',' + v(n % 6) + ')'; }
  const g = (n - 232) * 10 + 8; return 'rgb(' + g + ',' + g + ',' + g + ')';
}

// ---- the run page's log: the model (no DOM) ------------------------------------------------
// The log arrives as chunks {seq, job_id, at, data} (GET …/log?format=ndjson); a chunk may end
// mid-line. logModel keeps each job's lines with the time of the chunk each began in, and splits
// them into groups: group 0 is what a job printed before its first step ("Set up job": checkout,
// image pulls), group k its k-th step, opened by the step's "▶ NAME" line (or its "○ NAME:
// skipped") — matched to the job's steps in order, so a step printing "▶ x" opens nothing.
function logModel() {
  // gJob/gLine map the run-wide line number n (the old #Ln links) to a job's line: the n-th
  // line completed in the whole run.
  return { jobs: new Map(), gJob: [], gLine: [] };
}
function logJob(m, id) {
  let jm = m.jobs.get(id);
  if (!jm) {
    jm = { id, raw: [], at: [], st: new Map(), partial: null, partialAt: '', ansi: {}, ansiOn: false,
      steps: [], next: 0, groups: [{ from: -1, n: 0 }], cur: 0, changed: true };
    m.jobs.set(id, jm);
  }
  return jm;
}
// logSteps tells a job its step names (from the run), in order.
function logSteps(jm, names) {
  jm.steps = names;
  while (jm.groups.length < names.length + 1) jm.groups.push({ from: -1, n: 0 });
}
function logLine(m, jm, text, at) {
  if (text.endsWith('\r')) text = text.slice(0, -1);
  const cr = text.lastIndexOf('\r'); // a progress bar: only its last state shows
  if (cr >= 0) text = text.slice(cr + 1);
  const i = jm.raw.length;
  const want = jm.steps[jm.next];
  if (want !== undefined && text.charCodeAt(0) !== 27 && (text === '▶ ' + want || text === '○ ' + want + ': skipped')) {
    jm.next++;
    jm.cur = jm.next;
  }
  const g = jm.groups[jm.cur];
  if (g.from < 0) g.from = i;
  g.n++;
  jm.raw.push(text);
  jm.at.push(at);
  if (jm.ansiOn) jm.st.set(i, Object.assign({}, jm.ansi));
  if (text.indexOf('\x1b') >= 0) jm.ansiOn = ansiAdvance(text, jm.ansi);
  m.gJob.push(jm);
  m.gLine.push(i);
  jm.changed = true;
}
// logFeed adds one chunk; a line it leaves open waits for the next chunk of its job.
function logFeed(m, c) {
  const jm = logJob(m, c.job_id || 0);
  const data = String(c.data || '');
  let start = 0, nl;
  while ((nl = data.indexOf('\n', start)) >= 0) {
    let text = data.slice(start, nl), at = c.at || '';
    if (jm.partial !== null) { text = jm.partial + text; at = jm.partialAt; jm.partial = null; }
    logLine(m, jm, text, at);
    start = nl + 1;
  }
  if (start < data.length) {
    if (jm.partial === null) { jm.partial = data.slice(start); jm.partialAt = c.at || ''; } else jm.partial += data.slice(start);
  }
  return jm;
}
// logFinish ends the lines left open once the log is complete.
function logFinish(m) {
  for (const jm of m.jobs.values()) {
    if (jm.partial !== null) { const t = jm.partial; jm.partial = null; logLine(m, jm, t, jm.partialAt); }
  }
}
// logGroupOf is the index of the group that holds line i of jm.
function logGroupOf(jm, i) {
  for (let k = jm.groups.length - 1; k >= 0; k--) { const g = jm.groups[k]; if (g.from >= 0 && g.from <= i) return k; }
  return 0;
}
// logSearch finds q (case-insensitively, in the text without colour codes) in the jobs' lines,
// in the order given; it answers [job, line index] pairs.
function logSearch(jobs, q) {
  const out = [];
  if (!q) return out;
  const needle = q.toLowerCase();
  for (const jm of jobs) {
    const raw = jm.raw;
    for (let i = 0; i < raw.length; i++) if (ansiStrip(raw[i]).toLowerCase().indexOf(needle) >= 0) out.push([jm, i]);
  }
  return out;
}
// logTime shows a chunk's time as the local time of day with milliseconds.
function logTime(at) {
  if (!at) return '';
  const d = new Date(at);
  if (isNaN(d)) return '';
  const p = (n, w) => String(n).padStart(w || 2, '0');
  return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3);
}

// ---- the run page's log: the view ------------------------------------------------------------
const LOG_PAGE = 200; // lines per page; a page's lines are in the DOM only while near the screen

// logView shows model m in box (the scrolling #log): one section per job, one disclosure per step,
// and in each only the pages of lines near the screen.
function logView(box, m, opts) {
  const v = { jobs: new Map(), run: null, follow: false, lastAuto: -1, rowH: 18,
    showTs: opts.timestamps, hl: null, matches: [], matchSet: new Map(), cur: -1, query: '', frame: 0, want: null };
  const notice = h('div', { class: 'log-notice' });
  box.append(notice);
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const pv = e.target.__page;
      if (!pv) continue;
      if (e.isIntersecting) pageRender(pv); else pageDrop(pv);
    }
  }, { root: box, rootMargin: '600px 0px' });

  // Sections and groups follow the run's stages and jobs, in the sidebar's order.
  function jobView(id) {
    let jv = v.jobs.get(id);
    if (jv) return jv;
    const jm = logJob(m, id);
    const sec = h('section', { class: 'logjob', id: 'J' + id, 'aria-labelledby': 'J' + id + '-h' });
    const head = h('h3', { class: 'logjob-head', id: 'J' + id + '-h' });
    const wait = h('p', { class: 'logjob-wait', hidden: true });
    sec.append(head, wait);
    jv = { id, m: jm, sec, head, wait, groups: [], digits: 0, job: null };
    v.jobs.set(id, jv);
    if (id === 0) box.append(sec);
    return jv;
  }
  function groupView(jv, k) {
    let gv = jv.groups[k];
    if (gv) return gv;
    const gid = 'J' + jv.id + '-S' + k;
    const btn = h('button', { type: 'button', class: 'grp-head', 'aria-expanded': 'false', 'aria-controls': gid + '-b', id: gid + '-h' });
    const body = h('div', { class: 'grp-body', id: gid + '-b', hidden: true });
    const el = h('div', { class: 'grp', id: gid }, btn, body);
    gv = { k, el, btn, body, pages: [], open: false, user: false, status: '', jv };
    btn.addEventListener('click', () => { gv.user = true; groupOpen(gv, !gv.open); });
    jv.groups[k] = gv;
    return gv;
  }
  function groupOpen(gv, open) {
    if (gv.open === open) return;
    gv.open = open;
    gv.btn.setAttribute('aria-expanded', String(open));
    gv.body.hidden = !open;
    if (!open) for (const pv of gv.pages) pageDrop(pv);
  }
  function groupHead(gv, name, status, dur, title) {
    empty(gv.btn).append(h('span', { class: 'chev', 'aria-hidden': 'true' }, '›'), icon(status || 'queued'),
      h('span', { class: 'gname', title: title || name }, name), h('span', { class: 'dur' }, dur));
  }

  // setRun lays out the sections from the run (its stages, jobs, steps and their statuses).
  v.setRun = function (run) {
    v.run = run;
    const live = !TERMINAL[run.status];
    let prev = notice;
    for (const sg of run.stages) {
      for (const j of sg.jobs) {
        const jv = jobView(j.id);
        jv.job = j;
        if (prev.nextSibling !== jv.sec) prev.after(jv.sec);
        prev = jv.sec;
        logSteps(jv.m, j.steps.map(s => s.name));
        empty(jv.head).append(icon(j.status), ' ', h('span', { class: 'jname', title: j.name }, j.name),
          h('span', { class: 'sr' }, ' ' + j.status), ' ', h('span', { class: 'dur' }, duration(j.started_at, j.finished_at)),
          h('a', { class: 'jraw', href: '/api/v1/runs/' + run.id + '/log?job=' + j.id, target: '_blank', rel: 'noopener', 'aria-label': 'Raw log of ' + j.name }, 'raw'));
        const anyFailed = j.steps.some(s => s.status === 'failed');
        const setup = groupView(jv, 0);
        const setupStatus = j.status === 'failed' && !anyFailed ? 'failed' : jv.m.next > 0 || TERMINAL[j.status] ? 'success' : j.status;
        groupHead(setup, 'Set up job', setupStatus, '');
        groupAuto(setup, setupStatus, live);
        let last = setup.el;
        if (!setup.el.parentNode) jv.sec.append(setup.el);
        j.steps.forEach((s, i) => {
          const gv = groupView(jv, i + 1);
          const exit = s.exit_code !== null && s.exit_code !== undefined && s.status === 'failed' ? 'exit ' + s.exit_code + ' · ' : '';
          groupHead(gv, s.name, s.status, exit + duration(s.started_at, s.finished_at), s.name + ' · ' + s.status);
          groupAuto(gv, s.status, live);
          if (!gv.el.parentNode) last.after(gv.el);
          last = gv.el;
        });
        jv.wait.textContent = j.waiting || '';
      }
    }
    const zero = v.jobs.get(0);
    if (zero) box.append(zero.sec);
    sync();
  };
  // A step's group opens when it runs (its first lines come in while the reader watches) or
  // fails; on a page opened after it succeeded it is folded. An open group stays open, and one
  // the reader opened or closed stays so.
  function groupAuto(gv, status, live) {
    if (gv.status === status) return;
    const first = !gv.status;
    if (first) gv.watched = !TERMINAL[status]; // the reader sees it run: it opens when its lines come
    gv.status = status;
    if (gv.user) return;
    const open = status === 'failed' || (live && status === 'running');
    if (open || first) groupOpen(gv, open);
  }

  // ---- pages of lines
  function pagesOf(gv) {
    const g = gv.jv.m.groups[gv.k];
    const count = Math.ceil(g.n / LOG_PAGE);
    for (let p = 0; p < count; p++) {
      let pv = gv.pages[p];
      const from = g.from + p * LOG_PAGE, n = Math.min(LOG_PAGE, g.n - p * LOG_PAGE);
      if (!pv) {
        pv = { gv, from, n: 0, shown: 0, el: h('div', { class: 'pg' }) };
        pv.el.__page = pv;
        gv.pages[p] = pv;
        gv.body.append(pv.el);
        io.observe(pv.el);
      }
      if (pv.n === n) continue;
      pv.n = n;
      if (pv.shown) pageMore(pv); else pv.el.style.height = (n * v.rowH) + 'px';
    }
  }
  function pageRender(pv) {
    if (pv.shown || !pv.n) return;
    pv.el.style.height = '';
    pageMore(pv);
    if (v.follow) toBottom();
    if (!v.measured) {
      const line = pv.el.firstChild;
      if (line && line.offsetHeight) { v.rowH = line.offsetHeight; v.measured = true; }
    }
  }
  function pageMore(pv) {
    const frag = document.createDocumentFragment();
    for (let i = pv.from + pv.shown; i < pv.from + pv.n; i++) frag.append(lineNode(pv.gv.jv, i));
    pv.shown = pv.n;
    pv.el.append(frag);
  }
  function pageDrop(pv) {
    if (!pv.shown) return;
    const hgt = pv.el.offsetHeight;
    empty(pv.el);
    pv.shown = 0;
    pv.el.style.height = (hgt || pv.n * v.rowH) + 'px';
  }
  function pageRedraw(pv) { if (pv.shown) { empty(pv.el); pv.shown = 0; pageMore(pv); } }
  function lineNode(jv, i) {
    const jm = jv.m, n = i + 1, id = 'J' + jm.id + '-L' + n;
    const st = jm.st.get(i);
    const raw = jm.raw[i];
    const ms = v.matchSet.get(jm);
    let cls = 'line';
    if (ms && ms.has(i)) cls += ' match';
    if (v.cur >= 0 && v.matches[v.cur][0] === jm && v.matches[v.cur][1] === i) cls += ' match-cur';
    if (v.hl && v.hl[0] === jm && v.hl[1] === i) cls += ' hl';
    let text;
    if (ms && ms.has(i) && raw.indexOf('\x1b') < 0) text = markText(raw, v.query);
    else text = ansiLine(raw, st ? Object.assign({}, st) : {});
    return h('div', { class: cls, id },
      h('a', { class: 'ln', href: '#' + id, tabindex: '-1' }, String(n)),
      v.showTs ? h('span', { class: 'ts', title: jm.at[i] || null }, logTime(jm.at[i])) : null,
      h('span', { class: 'tx' }, text));
  }
  function markText(raw, q) {
    const out = [], low = raw.toLowerCase(), needle = q.toLowerCase();
    let at = 0, i;
    while (needle && (i = low.indexOf(needle, at)) >= 0) {
      if (i > at) out.push(raw.slice(at, i));
      out.push(h('mark', {}, raw.slice(i, i + needle.length)));
      at = i + needle.length;
    }
    if (at < raw.length) out.push(raw.slice(at));
    return out;
  }

  // ---- keeping the DOM in step with the model, once a frame
  function sync() {
    v.frame = 0;
    for (const jm of m.jobs.values()) {
      if (!jm.changed) continue;
      jm.changed = false;
      const jv = jobView(jm.id);
      if (!jv.sec.parentNode) box.append(jv.sec);
      if (jm.id === 0 && !jv.head.firstChild) jv.head.append(h('span', { class: 'jname' }, 'The run'), h('span', { class: 'from' }, ' · from the server'));
      const digits = String(jm.raw.length).length;
      if (digits !== jv.digits) { jv.digits = digits; jv.sec.style.setProperty('--lnw', Math.max(3, digits) + 'ch'); }
      jm.groups.forEach((g, k) => {
        if (!g.n) return;
        const gv = groupView(jv, k);
        if (!gv.el.parentNode) jv.sec.append(gv.el);
        if (!gv.btn.firstChild) { groupHead(gv, k ? (jm.steps[k - 1] || 'Step ' + k) : jm.id ? 'Set up job' : 'Messages', jm.id ? 'running' : 'none', ''); if (!jm.id) groupOpen(gv, true); }
        if (gv.watched && !gv.user) { gv.watched = false; groupOpen(gv, true); }
        pagesOf(gv);
      });
    }
    let lines = 0, waiting = '';
    for (const jv of v.jobs.values()) {
      lines += jv.m.raw.length;
      jv.wait.hidden = !(jv.wait.textContent && !jv.m.raw.length);
      const setup = jv.groups[0];
      if (setup) setup.el.hidden = !jv.m.groups[0].n;
      if (jv.job && jv.job.waiting && !waiting) waiting = jv.job.name + ': ' + jv.job.waiting;
    }
    const run = v.run;
    if (lines) notice.hidden = true;
    else {
      notice.hidden = false;
      notice.textContent = v.error || (run && run.waiting) || waiting ||
        (run && TERMINAL[run.status] && v.ended ? 'This run wrote no log.' : 'Waiting for the first line…');
      notice.classList.toggle('error', !!v.error);
    }
    if (v.want) v.jump(v.want);
    if (v.follow) toBottom();
    if (v.onSync) v.onSync();
  }
  v.changed = function () { if (!v.frame) v.frame = requestAnimationFrame(sync); };
  v.flush = sync;
  v.fail = function (msg) { v.error = msg; sync(); };

  // ---- follow: the bottom stays in view while the run runs and the reader has not scrolled up
  function toBottom() { box.scrollTop = box.scrollHeight; v.lastAuto = box.scrollTop; }
  box.addEventListener('scroll', () => {
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    if (atBottom && v.run && !TERMINAL[v.run.status]) v.setFollow(true);
    else if (!atBottom && Math.abs(box.scrollTop - v.lastAuto) > 2) v.setFollow(false);
  });
  v.setFollow = function (on) {
    if (v.follow === on) return;
    v.follow = on;
    if (on) toBottom();
    if (opts.onFollow) opts.onFollow(on);
  };

  // ---- jumping to a line or a step: #J<job>-L<n>, #L<n> (run-wide, as links of old), #J<job>-S<k>
  v.jump = function (hash) {
    v.want = hash;
    let mm = /^#J(\d+)-L(\d+)$/.exec(hash), jm, i;
    if (mm) { jm = m.jobs.get(Number(mm[1])); i = Number(mm[2]) - 1; if (!jm || i >= jm.raw.length) return false; }
    else if ((mm = /^#L(\d+)$/.exec(hash))) { const n = Number(mm[1]) - 1; if (n >= m.gJob.length) return false; jm = m.gJob[n]; i = m.gLine[n]; }
    else if ((mm = /^#J(\d+)-S(\d+)$/.exec(hash))) {
      const jv = v.jobs.get(Number(mm[1])), gv = jv && jv.groups[Number(mm[2])];
      v.want = null;
      if (!gv) return false;
      v.setFollow(false);
      groupOpen(gv, true);
      gv.el.scrollIntoView({ block: 'start' });
      gv.btn.focus({ preventScroll: true });
      return true;
    } else { v.want = null; return false; }
    v.want = null;
    v.setFollow(false);
    const old = v.hl;
    v.hl = [jm, i];
    if (old) lineClass(old[0], old[1], 'hl', false);
    v.reveal(jm, i);
    lineClass(jm, i, 'hl', true);
    return true;
  };
  function lineClass(jm, i, cls, on) {
    const el = document.getElementById('J' + jm.id + '-L' + (i + 1));
    if (el) el.classList.toggle(cls, on);
  }
  // reveal opens the group of line i of jm, draws its page and scrolls it to the box's middle.
  v.reveal = function (jm, i) {
    const jv = v.jobs.get(jm.id);
    const k = logGroupOf(jm, i), gv = jv.groups[k], g = jm.groups[k];
    groupOpen(gv, true);
    const pv = gv.pages[Math.floor((i - g.from) / LOG_PAGE)];
    if (pv) pageRender(pv);
    const el = document.getElementById('J' + jm.id + '-L' + (i + 1));
    if (el) el.scrollIntoView({ block: 'center' });
  };

  // ---- search: every line, drawn or not
  v.search = function (q) {
    v.query = q;
    v.matches = logSearch(v.ordered(), q);
    v.matchSet = new Map();
    for (const [jm, i] of v.matches) { let s = v.matchSet.get(jm); if (!s) v.matchSet.set(jm, s = new Set()); s.add(i); }
    v.cur = -1;
    v.redraw();
    if (v.matches.length) v.step(1);
    return v.matches.length;
  };
  v.step = function (dir) {
    if (!v.matches.length) return;
    const old = v.cur;
    v.cur = old < 0 ? 0 : (old + dir + v.matches.length) % v.matches.length;
    if (old >= 0) lineClass(v.matches[old][0], v.matches[old][1], 'match-cur', false);
    const [jm, i] = v.matches[v.cur];
    v.setFollow(false);
    v.reveal(jm, i);
    lineClass(jm, i, 'match-cur', true);
  };
  v.ordered = function () {
    const out = [];
    for (const sec of box.querySelectorAll(':scope > section.logjob')) {
      const jv = v.jobs.get(Number(sec.id.slice(1)));
      if (jv) out.push(jv.m);
    }
    return out;
  };
  v.redraw = function () { for (const jv of v.jobs.values()) for (const gv of jv.groups) if (gv) gv.pages.forEach(pageRedraw); };
  v.timestamps = function (on) { v.showTs = on; v.redraw(); };
  v.groupOpen = groupOpen;
  return v;
}
