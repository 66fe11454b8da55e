// flowd UI: progressive enhancement over server-rendered pages. Every read and change goes
// through the JSON API (docs/api.md) with the session cookie and, for changes, X-CSRF-Token.
'use strict';
(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  let CSRF = csrfMeta ? csrfMeta.content : '';
  const TERMINAL = { success: 1, failed: 1, canceled: 1, skipped: 1 };
  const ICON = { success: '✓', failed: '✗', running: '▶', canceling: '⊘', queued: '…', canceled: '⊘', skipped: '↷' };

  // ---- small helpers ----------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  async function api(method, path, body, opts) {
    opts = opts || {};
    // X-Requested-With tells the API this is the page's own request: a 401 then carries no
    // HTTP Basic challenge, which would open the browser's sign-in dialog.
    const headers = Object.assign({ Accept: 'application/json', 'X-Requested-With': 'flowd-web' }, opts.headers || {});
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = CSRF;
    let payload;
    if (body !== undefined && body !== null) {
      if (typeof body === 'string') {
        payload = body;
        if (!headers['Content-Type']) headers['Content-Type'] = 'application/yaml';
      } else {
        payload = JSON.stringify(body);
        headers['Content-Type'] = 'application/json';
      }
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
    } catch (e) {
      return { status: 0, data: { error: { code: 'network', message: 'flowd cannot be reached; check your connection and try again' } } };
    }
    // A page with unsaved text stays (its editor keeps the text and offers to sign in again).
    if (res.status === 401 && !opts.noRedirect && !hasUnsaved()) {
      location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
    }
    let data = null;
    const text = await res.text();
    if (text) { try { data = JSON.parse(text); } catch (e) { data = { text }; } }
    if (res.status === 403 && data && data.error && data.error.code === 'csrf' && headers['X-CSRF-Token'] && !opts.csrfRetried && await freshCSRF()) {
      return api(method, path, body, Object.assign({}, opts, { csrfRetried: true }));
    }
    return { status: res.status, data, ok: res.ok };
  }
  // freshCSRF reads the CSRF token of the current session off this page served anew: after
  // signing in again in another tab, this page's token belongs to a session that has ended.
  // It reports whether the token changed.
  async function freshCSRF() {
    let m;
    try {
      const res = await fetch(location.pathname + location.search, { credentials: 'same-origin' });
      if (!res.ok) return false;
      m = /<meta name="csrf-token" content="([A-Za-z0-9_-]+)">/.exec(await res.text()); // read as text, never parsed
    } catch (e) {
      return false;
    }
    if (!m || m[1] === CSRF) return false;
    CSRF = m[1];
    if (csrfMeta) csrfMeta.content = CSRF;
    for (const el of $$('form input[name="csrf"]')) el.value = CSRF;
    return true;
  }
  function errText(r) {
    if (r.data && r.data.error) return r.data.error.message || r.data.error.code;
    return 'the server answered ' + r.status;
  }
  let toastTimer;
  function toast(msg, bad) {
    const t = $('#toast');
    if (!t) return;
    t.textContent = msg;
    t.className = 'show' + (bad ? ' error' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.className = ''; }, bad ? 6000 : 2500);
  }
  function badge(status) {
    status = status || 'none';
    return h('span', { class: 'badge s-' + status }, h('span', { 'aria-hidden': 'true' }, ICON[status] || '•'), ' ' + (status === 'none' ? 'never run' : status));
  }
  function icon(status) {
    return h('span', { class: 'icon i-' + status, title: status, 'aria-label': status, role: 'img' }, ICON[status] || '•');
  }
  function setFavicon(status) {
    const link = $('#favicon');
    if (link) link.href = '/favicon.svg' + (status ? '?status=' + encodeURIComponent(status) : '');
  }
  function ago(iso) {
    if (!iso) return '';
    const s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (s < 45) return 'just now';
    if (s < 90) return 'a minute ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    if (s < 86400 * 30) return Math.round(s / 86400) + ' d ago';
    return new Date(iso).toLocaleDateString();
  }
  function when(iso) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
  }
  function duration(start, end) {
    if (!start) return '';
    const ms = (end ? new Date(end) : new Date()) - new Date(start);
    let s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60); s %= 60;
    if (m < 60) return m + 'm ' + s + 's';
    return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
  }
  async function copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      const ta = h('textarea', { class: 'sr' });
      ta.value = text; document.body.append(ta); ta.select();
      try { document.execCommand('copy'); } catch (e2) { /* nothing more to try */ }
      ta.remove();
    }
    toast((what || 'Text') + ' copied');
  }
  function copyButton(get, what) {
    return h('button', { type: 'button', class: 'btn small', onclick: () => copy(typeof get === 'function' ? get() : get, what) }, 'Copy');
  }
  function empty(el) { while (el.firstChild) el.firstChild.remove(); return el; }
  function triggerText(r) {
    const how = { manual: 'started by hand', webhook: 'webhook', push: 'Git push', cron: 'schedule' }[r.trigger] || r.trigger;
    return how + (r.triggered_by ? ' · ' + r.triggered_by : '');
  }
  function busy(btn, on) { if (btn) btn.disabled = on; }

  // ---- the commit a run builds (run.git) ----------------------------------------------------
  // Every part is payload data from a Git host: it only ever becomes text (h() sets textContent
  // and attributes), never markup.
  function firstLine(s) {
    s = String(s || '');
    const i = s.search(/\r|\n/);
    return (i >= 0 ? s.slice(0, i) : s).trim();
  }
  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + '…' : s; }
  // gitParts returns the nodes that describe git: the short SHA (full in its title), the branch
  // or tag, the event and provider, the commit message's first line and its author. compact
  // (run history rows) leaves out the event and author and clips the message.
  function gitParts(git, compact) {
    if (!git || !git.commit_sha) return [];
    const sha = String(git.commit_sha);
    const parts = [h('code', { class: 'sha', title: sha }, sha.slice(0, 12))];
    if (git.tag || git.branch) {
      parts.push(h('span', { class: 'ref', title: git.ref || null },
        git.tag ? 'tag ' : [h('span', { class: 'sr' }, 'branch '), h('span', { 'aria-hidden': 'true' }, '⎇ ')], git.tag || git.branch));
    }
    if (!compact && (git.event || git.provider)) {
      parts.push(h('span', { class: 'event', title: git.repo_url || null }, [git.event, git.provider].filter(Boolean).join(' · ')));
    }
    const msg = firstLine(git.commit_message);
    if (msg) parts.push(h('span', { class: 'msg', title: compact ? msg : null }, compact ? clip(msg, 60) : msg));
    if (!compact && git.commit_author) parts.push(h('span', { class: 'author' }, 'by ' + git.commit_author));
    return parts;
  }

  // jobImage is what a job's header says of its container: " in IMAGE" for a job in a
  // container, nothing for a job on the host.
  // jobLabels is " on k=v,…" for a job with runs-on: the labels a runner needs to take it.
  function jobLabels(job) {
    const keys = Object.keys((job && job.runs_on) || {}).sort();
    if (!keys.length) return '';
    return h('span', { class: 'image', title: 'runs only on an agent (or server) with these labels' }, ' on ', h('code', {}, keys.map(k => k + '=' + job.runs_on[k]).join(',')));
  }

  function jobImage(job) {
    if (!job || !job.container || !job.container.image) return '';
    return h('span', { class: 'image', title: 'runs in a container of this image' }, ' in ', h('code', {}, String(job.container.image)));
  }

  // ---- the YAML editor ---------------------------------------------------------------------
  // Unsaved changes: each editor registers a function that says whether it holds unsaved
  // text. Leaving the page then asks first: links on the page with a confirm() that names what
  // would be lost, every other way (reload, close, a form, a script's navigation) with the
  // browser's own beforeunload question.
  const unsaved = new Set();
  let leaving = false;
  const hasUnsaved = () => !leaving && Array.from(unsaved).some(f => f());
  window.addEventListener('beforeunload', (e) => {
    if (!hasUnsaved()) return;
    e.preventDefault();
    e.returnValue = '';
  });
  document.addEventListener('click', (e) => {
    const a = e.target instanceof Element ? e.target.closest('a[href]') : null;
    if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    if (a.target === '_blank' || a.hasAttribute('download')) return;
    const to = new URL(a.href, location.href);
    if (to.origin === location.origin && to.pathname === location.pathname && to.search === location.search) return; // #part of this page
    if (a.dataset.keepsDraft === 'true') { leaving = true; return; }
    if (!hasUnsaved()) return;
    if (confirm('The definition has unsaved changes. Leave this page and lose them?')) leaving = true;
    else e.preventDefault();
  });

  // Drafts: an edit the server could not take because the session ended is kept in this tab's
  // sessionStorage under the pipeline's name (with the revision it was made on) until it is
  // saved or discarded, and put back in the editor when the page loads again.
  const NEW_PIPELINE = '(new pipeline)'; // the draft name of the editor that creates one
  const draftKey = (name) => 'flowd:draft:' + name;
  function draftGet(name) {
    try { return JSON.parse(sessionStorage.getItem(draftKey(name)) || 'null'); } catch (e) { return null; }
  }
  function draftPut(name, yaml, revision) {
    try { sessionStorage.setItem(draftKey(name), JSON.stringify({ yaml, revision, at: new Date().toISOString() })); return true; } catch (e) { return false; }
  }
  function draftDrop(name) {
    try { sessionStorage.removeItem(draftKey(name)); } catch (e) { /* nothing kept, nothing to drop */ }
  }

  // A textarea with line numbers; problems (line:column) come from the API's validator as you
  // type, and from the save itself. Tab indents by two spaces and Shift+Tab outdents (the
  // selected lines, or the caret's); Esc then Tab leaves the editor, as GitHub's does.
  function editor(root, opts) {
    opts = opts || {};
    const mode = root.dataset.mode;
    const draftName = mode === 'create' ? NEW_PIPELINE : root.dataset.name;
    const ta = h('textarea', { spellcheck: 'false', autocapitalize: 'off', 'aria-label': 'Pipeline definition (YAML)', id: 'yaml',
      'aria-describedby': mode === 'view' ? null : 'yaml-keys' });
    const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
    const state = h('span', { class: 'muted', id: 'yaml-state', 'aria-live': 'polite' });
    const problems = h('ul', { class: 'problems', id: 'yaml-problems' });
    const notice = h('div', { id: 'yaml-notice', role: 'status' });
    const keys = mode === 'view' ? null : h('span', { class: 'hint', id: 'yaml-keys' }, 'Tab indents · Esc then Tab leaves the editor');
    const save = mode === 'view' ? null : h('button', { type: 'button', class: 'btn primary', id: 'yaml-save' }, mode === 'create' ? 'Create pipeline' : 'Save');
    if (mode === 'view') ta.readOnly = true;
    root.append(notice, h('div', { class: 'edwrap' }, gutter, ta), h('div', { class: 'edbar' }, state, h('span', { class: 'edact' }, keys, save)), problems);
    let bad = new Set();
    let clean = '', revision = 0; // the text as the server has it, and its revision
    unsaved.add(() => !ta.readOnly && ta.value !== clean);
    function lines() {
      const n = ta.value.split('\n').length;
      empty(gutter);
      for (let i = 1; i <= n; i++) {
        gutter.append(bad.has(i) ? h('span', { class: 'bad' }, String(i)) : String(i), i < n ? '\n' : '');
      }
      gutter.scrollTop = ta.scrollTop;
    }
    // replace puts text over from..to as typing would (the browser's undo keeps it), then selects
    // selStart..selEnd.
    function replace(from, to, text, selStart, selEnd) {
      ta.setSelectionRange(from, to);
      if (!document.execCommand('insertText', false, text)) {
        ta.setRangeText(text, from, to, 'end');
        ta.dispatchEvent(new Event('input', { bubbles: true }));
      }
      ta.setSelectionRange(selStart, selEnd);
    }
    function indent(out) {
      const v = ta.value, s = ta.selectionStart, e = ta.selectionEnd;
      if (!out && s === e) { replace(s, s, '  ', s + 2, s + 2); return; }
      const from = v.lastIndexOf('\n', s - 1) + 1;
      let end = e > s && v[e - 1] === '\n' ? e - 1 : e; // a selection ending at a line's start leaves that line alone
      end = v.indexOf('\n', end);
      if (end < 0) end = v.length;
      let firstShift = 0;
      const block = v.slice(from, end).split('\n').map((l, i) => {
        let n = 2;
        if (out) n = -(l.startsWith('  ') ? 2 : l.startsWith(' ') ? 1 : 0);
        else if (!l && s !== e) n = 0; // no trailing blanks on empty lines
        if (i === 0) firstShift = n;
        return n >= 0 ? ' '.repeat(n) + l : l.slice(-n);
      }).join('\n');
      if (block === v.slice(from, end)) return;
      if (s === e) { const c = Math.max(from, s + firstShift); replace(from, end, block, c, c); return; }
      replace(from, end, block, from, from + block.length);
    }
    let escaped = false; // Esc was the last key: the next Tab leaves the editor
    ta.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { escaped = true; return; }
      if (e.key === 'Tab' && !e.ctrlKey && !e.altKey && !e.metaKey && !ta.readOnly && !escaped) {
        e.preventDefault(); indent(e.shiftKey); return;
      }
      if (!['Shift', 'Control', 'Alt', 'Meta'].includes(e.key)) escaped = false;
      if ((e.ctrlKey || e.metaKey) && e.key === 's' && save) { e.preventDefault(); save.click(); }
    });
    ta.addEventListener('blur', () => { escaped = false; });
    ta.addEventListener('scroll', () => { gutter.scrollTop = ta.scrollTop; });
    function goTo(line, col) {
      const ls = ta.value.split('\n');
      let pos = 0;
      for (let i = 0; i < line - 1 && i < ls.length; i++) pos += ls[i].length + 1;
      pos += Math.max(0, (col || 1) - 1);
      ta.focus(); ta.setSelectionRange(pos, pos);
      const lh = parseFloat(getComputedStyle(ta).lineHeight) || 20;
      ta.scrollTop = Math.max(0, (line - 4) * lh);
    }
    function show(list, message) {
      empty(problems);
      bad = new Set();
      for (const p of list || []) {
        if (p.line) bad.add(p.line);
        const pos = p.line ? p.line + ':' + (p.column || 1) : '';
        problems.append(h('li', {}, h('button', { type: 'button', onclick: () => goTo(p.line, p.column), title: pos ? 'Go to line ' + p.line + ', column ' + (p.column || 1) : '' },
          pos ? h('span', { class: 'pos' }, pos) : null, pos ? ' ' : '', p.message || p.key || '')));
      }
      if (message && !(list && list.length)) problems.append(h('li', {}, h('button', { type: 'button' }, message)));
      lines();
    }
    let timer, seq = 0, validateMissing = false;
    async function validate() {
      if (validateMissing || !ta.value.trim()) { show([]); state.textContent = ''; return; }
      const my = ++seq;
      state.textContent = 'Checking…'; state.className = 'muted';
      const check = '/api/v1/pipelines/validate' + (mode === 'edit' ? '?pipeline=' + encodeURIComponent(root.dataset.name) : '');
      const r = await api('POST', check, ta.value, { noRedirect: true });
      if (my !== seq) return;
      if (r.status === 404 || r.status === 405) { validateMissing = true; state.textContent = ''; return; }
      if (r.ok) { show([]); state.textContent = '✓ Valid'; state.className = 'valid'; return; }
      if (r.status === 401) { state.textContent = ''; return; } // the save says what to do
      const probs = (r.data && r.data.error && r.data.error.problems) || [];
      show(probs, errText(r));
      state.textContent = '✗ ' + (probs.length === 1 ? '1 problem' : probs.length + ' problems'); state.className = 'pos';
    }
    ta.addEventListener('input', () => { lines(); clearTimeout(timer); timer = setTimeout(validate, 350); });
    // signedOut keeps the text the server refused with 401 and offers to sign in again: in this
    // tab (the draft comes back when the page loads after signing in) or in a new tab (then
    // Save here again).
    function signedOut() {
      const kept = draftPut(draftName, ta.value, revision);
      const here = location.pathname + location.search;
      const login = '/login?next=' + encodeURIComponent(here);
      empty(notice).append(h('div', { class: 'alert warn', id: 'yaml-reauth', role: 'alert' },
        h('p', {}, h('strong', {}, 'Not saved: your session has ended. '),
          kept ? 'Your edit is kept in this tab and comes back after you sign in here; or sign in in a new tab, then Save again.' : 'Your edit is still in the editor; do not close this page: sign in in a new tab, then Save again.'),
        h('p', { class: 'actions' },
          kept ? h('a', { class: 'btn primary', href: login, id: 'yaml-signin', 'data-keeps-draft': 'true' }, 'Sign in again') : null,
          h('a', { class: 'btn', href: login, target: '_blank', rel: 'noopener', id: 'yaml-signin-tab' }, 'Sign in in a new tab'),
          h('button', { type: 'button', class: 'btn', id: 'yaml-retry', onclick: () => save.click() }, 'Save again'))));
      state.textContent = '✗ Not saved: sign in again'; state.className = 'pos';
      $('#yaml-signin, #yaml-signin-tab', notice).focus();
    }
    if (save) save.addEventListener('click', async () => {
      busy(save, true);
      const r = mode === 'create'
        ? await api('POST', '/api/v1/pipelines', ta.value, { noRedirect: true })
        : await api('PUT', '/api/v1/pipelines/' + encodeURIComponent(root.dataset.name), ta.value, { noRedirect: true });
      busy(save, false);
      if (r.status === 401) { signedOut(); return; }
      empty(notice);
      if (r.ok) {
        show([]);
        clean = ta.value;
        draftDrop(draftName);
        if (mode === 'create') { location.href = '/pipelines/' + encodeURIComponent(r.data.name); return; }
        toast('Saved revision ' + r.data.revision);
        if (opts.saved) opts.saved(r.data);
        return;
      }
      const probs = (r.data && r.data.error && r.data.error.problems) || [];
      show(probs, errText(r));
      state.textContent = '✗ Not saved: ' + errText(r); state.className = 'pos';
    });
    // restore puts a kept draft back over the saved text, with a notice.
    function restore() {
      const d = draftGet(draftName);
      if (!d || typeof d.yaml !== 'string' || ta.readOnly) return false;
      if (d.yaml === clean) { draftDrop(draftName); return false; }
      ta.value = d.yaml;
      const moved = mode === 'edit' && d.revision && revision && d.revision !== revision;
      empty(notice).append(h('div', { class: 'alert warn', id: 'yaml-restored' },
        h('p', {}, h('strong', {}, 'Your unsaved edit was restored; review and save. '),
          moved ? 'It was made on revision ' + d.revision + '; the pipeline has been saved since (now revision ' + revision + '), and saving replaces that.' : ''),
        h('p', { class: 'actions' }, h('button', { type: 'button', class: 'btn small', id: 'yaml-discard', onclick: () => {
          if (!confirm('Discard your restored edit and show the saved definition?')) return;
          draftDrop(draftName); ta.value = clean; empty(notice); show([]); validate();
        } }, 'Discard my edit'))));
      return true;
    }
    return {
      set(text, rev) {
        clean = text; revision = rev || 0; ta.value = text;
        show([]);
        if (restore()) { show([]); validate(); }
      },
      get() { return ta.value; },
      validate,
    };
  }
  // ---- pages -------------------------------------------------------------------------------
  const pages = {};

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

  pages.pipeline = async function () {
    const root = $('#pipeline');
    const name = root.dataset.name;
    const canRun = root.dataset.canRun === 'true';
    const canAdmin = root.dataset.canAdmin === 'true';
    const base = '/api/v1/pipelines/' + encodeURIComponent(name);
    let def;
    const ed = editor($('#definition .editor'), { saved: (p) => { def = p; drawDef(); } });

    function drawDef() {
      $('#description').textContent = def.description || '';
      $('#revision').textContent = 'revision ' + def.revision + ' · updated ' + ago(def.updated_at);
      drawTrust();
      ed.set(def.yaml, def.revision);
      const vt = empty($('#var-list tbody'));
      if (!def.variables.length) vt.append(h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No variables.')));
      for (const v of def.variables) {
        vt.append(h('tr', {},
          h('td', {}, h('code', {}, v.name)),
          h('td', {}, v.secret ? h('span', { class: 'muted', title: 'secret: never shown' }, '•••• secret') : h('code', {}, v.default === '' ? '""' : v.default)),
          h('td', { class: 'muted' }, [v.description, v.options.length ? 'one of: ' + v.options.join(', ') : ''].filter(Boolean).join(' · '))));
      }
      drawQueue();
      if (canRun) drawRunForm();
    }
    // The pipeline's queue now and its bound (queue: in the definition): webhooks that would
    // start a run over it are answered 429 with Retry-After, and nothing is stored for them.
    function drawQueue() {
      const q = def.queue, box = empty($('#queue-state'));
      const n = (x) => Number(x).toLocaleString('en');
      if (q.queued !== undefined) {
        box.append(h('p', { id: 'queue-now' }, h('strong', {}, n(q.queued)), q.queued === 1 ? ' run waiting to start' : ' runs waiting to start',
          q.queued && q.seconds !== undefined ? ' · about ' + n(q.seconds) + ' s of work at the recent rate' : '',
          q.queued && q.seconds === undefined ? ' · no run ended in the last minute' : ''));
      }
      const bounds = [q.max_runs ? n(q.max_runs) + ' queued runs' : '', q.max_seconds ? n(q.max_seconds) + ' s of work' : ''].filter(Boolean);
      box.append(h('p', { id: 'queue-bound', class: 'muted' }, bounds.length
        ? ['Bound: ', h('strong', {}, bounds.join(' or ')), ' (queue: in the definition). Over it, webhooks are answered 429 with Retry-After and nothing is stored; runs started here are not refused.']
        : 'No bound of its own (add queue: {max_runs: N} to the definition); the server\'s bound (--max-queued-runs) still applies to its webhooks, answered 503 with Retry-After.'));
    }
    // Trusted: may run where steps run as the server's own OS user (docs/DESIGN.md "Isolation").
    // Global admins mark and unmark it here.
    function drawTrust() {
      const box = empty($('#trust'));
      box.append(h('span', { title: 'A trusted pipeline may run on a server whose steps run as its own OS user' },
        def.trusted ? '· trusted by ' + def.trusted_by : '· not trusted'));
      if (root.dataset.globalAdmin !== 'true') return;
      const btn = h('button', { type: 'button', class: 'btn small', id: 'trust-toggle' }, def.trusted ? 'Untrust' : 'Trust');
      btn.addEventListener('click', async () => {
        busy(btn, true);
        const r = await api('POST', base + (def.trusted ? '/untrust' : '/trust'));
        busy(btn, false);
        if (!r.ok) { toast(errText(r), true); return; }
        def = r.data;
        drawTrust();
        toast(def.trusted ? 'Trusted: it may run where steps run as the server\'s user' : 'No longer trusted');
      });
      box.append(' ', btn);
    }
    function drawRunForm() {
      const box = empty($('#run-vars'));
      if (!def.variables.length) box.append(h('p', { class: 'muted' }, 'This pipeline has no variables.'));
      for (const v of def.variables) {
        const id = 'var-' + v.name;
        let input;
        if (v.options.length) {
          input = h('select', { id, name: v.name }, v.options.map(o => h('option', { value: o, selected: o === v.default }, o)));
        } else if (v.secret) {
          input = h('input', { id, name: v.name, type: 'password', autocomplete: 'off', placeholder: 'secret — empty keeps the stored default', 'data-secret': 'true' });
        } else {
          input = h('input', { id, name: v.name, value: v.default || '', 'data-default': v.default || '' });
        }
        box.append(h('label', { for: id }, h('code', {}, v.name), input, v.description ? h('span', { class: 'varhelp' }, v.description) : null));
      }
    }
    if (canRun) $('#run-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const vars = {};
      for (const el of $$('#run-vars [name]')) {
        if (el.dataset.secret && !el.value) continue;
        vars[el.name] = el.value;
      }
      const btn = $('#run-form button[type=submit]');
      busy(btn, true);
      const r = await api('POST', base + '/runs', { variables: vars });
      busy(btn, false);
      if (r.ok) { location.href = '/runs/' + r.data.run.id; return; }
      toast('Not started: ' + errText(r) + (r.data && r.data.error && r.data.error.problems ? ' — ' + r.data.error.problems.map(p => p.key + ': ' + p.message).join('; ') : ''), true);
    });

    // run history
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

    // members
    async function loadMembers() {
      const r = await api('GET', base + '/members');
      const tb = empty($('#member-list tbody'));
      if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 3 }, errText(r)))); return; }
      for (const m of r.data.members) {
        const row = h('tr', {}, h('td', {}, m.username));
        if (canAdmin) {
          const sel = h('select', { 'aria-label': 'Role of ' + m.username }, ['viewer', 'developer', 'admin'].map(x => h('option', { selected: x === m.role }, x)));
          sel.addEventListener('change', async () => {
            const rr = await api('PUT', base + '/members/' + encodeURIComponent(m.username), { role: sel.value });
            if (!rr.ok) toast(errText(rr), true); else toast(m.username + ' is now ' + sel.value);
            loadMembers();
          });
          row.append(h('td', {}, sel), h('td', {}, h('button', { type: 'button', class: 'btn small danger', onclick: async () => {
            if (!confirm('Remove ' + m.username + ' from ' + name + '?')) return;
            const rr = await api('DELETE', base + '/members/' + encodeURIComponent(m.username));
            if (!rr.ok) toast(errText(rr), true);
            loadMembers();
          } }, 'Remove')));
        } else {
          row.append(h('td', {}, m.role));
        }
        tb.append(row);
      }
    }
    if (canAdmin) $('#member-add').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = e.target;
      const r = await api('PUT', base + '/members/' + encodeURIComponent(f.user.value.trim()), { role: f.role.value });
      if (!r.ok) { toast(errText(r), true); return; }
      f.reset(); loadMembers(); toast('Member saved');
    });

    const r = await api('GET', base);
    if (!r.ok) { toast(errText(r), true); return; }
    def = r.data;
    drawDef();
    loadRuns();
    loadMembers();
    webhookPanel(name, def, canAdmin, canRun);
  };

  // The webhook trigger panel of a pipeline page.
  async function webhookPanel(name, def, canAdmin) {
    const base = '/api/v1/pipelines/' + encodeURIComponent(name) + '/triggers/webhook';
    const box = $('#hook');
    const sw = $('#hook-enabled');
    async function load() {
      const r = await api('GET', base);
      if (!r.ok) { empty(box).append(h('p', { class: 'alert error' }, errText(r))); return; }
      draw(r.data);
    }
    async function act(path, body, btn) {
      busy(btn, true);
      const r = await api('POST', base + '/' + path, body);
      busy(btn, false);
      if (!r.ok) { toast(errText(r), true); load(); return null; }
      draw(r.data);
      return r.data;
    }
    if (sw) sw.addEventListener('change', async () => {
      const on = sw.checked;
      const t = await act(on ? 'enable' : 'disable', null, sw);
      if (t) toast(on ? 'Webhook enabled; you are its owner' : 'Webhook disabled; its URL answers 404');
    });
    function draw(t) {
      empty(box);
      if (sw) { sw.checked = !!t.enabled; }
      const facts = h('dl', { class: 'facts' },
        h('dt', {}, 'State'), h('dd', { id: 'hook-state' }, t.enabled ? h('strong', { class: 'i-success' }, '● on') : h('strong', { class: 'muted' }, '○ off'),
          t.enabled ? ' — requests to the URL start runs' : (t.enabled_by ? ' — the URL answers 404 until enabled again' : ' — never enabled')),
        t.enabled_by ? [h('dt', {}, 'Owner'), h('dd', {}, t.enabled_by, t.enabled_at ? [' · since ', when(t.enabled_at)] : '')] : null,
        h('dt', {}, 'Signature'), h('dd', {}, t.has_secret ? (t.require_timestamp ? 'required: X-Hub-Signature-256 (HMAC-SHA256 of X-Flowd-Timestamp, "." and the body; the timestamp within 5 minutes)' : 'required: X-Hub-Signature-256 (HMAC-SHA256 of the body, or of X-Flowd-Timestamp, "." and the body)') : 'none: the URL alone is the credential'));
      box.append(facts);
      if (t.enabled_by && t.owner_can_run === false) {
        box.append(h('p', { class: 'alert warn', role: 'alert', id: 'hook-owner-warning' }, '⚠ ', t.owner_problem || ('The owner ' + t.enabled_by + ' can no longer run this pipeline; deliveries are refused. Disable and enable the trigger again as a user who may run it.')));
      }
      if (!canAdmin) {
        box.append(h('p', { class: 'muted' }, 'Only pipeline admins see the URL and change the trigger.'));
        return;
      }
      if (!t.url) {
        box.append(h('p', { class: 'muted' }, 'Switch the trigger on to get a URL that starts this pipeline with one HTTP request.'));
        return;
      }
      const url = t.url;
      // Like `flowd webhook enable`: the first declared variable with a value other than its
      // default, so the command shows an override at work.
      const first = def.variables.find((v) => !v.secret);
      let varBody = JSON.stringify({ abc: '456' });
      if (first) {
        const others = (first.options || []).filter((o) => o !== first.default);
        const value = others.length ? others[0] : (first.default === '456' ? '789' : '456');
        varBody = JSON.stringify({ [first.name]: value });
      }
      const q = (text) => "'" + text.replace(/'/g, "'\\''") + "'"; // one shell word
      // Signed: the Unix time in X-Flowd-Timestamp and the HMAC of "timestamp.body" (replay protection).
      const sign = (body) => t.has_secret
        ? 'ts=$(date +%s)\nbody=' + q(body) + "\nsig=$(printf '%s' \"$ts.$body\" | openssl dgst -sha256 -hmac \"$WEBHOOK_SECRET\" | sed 's/^.* //')\ncurl -X POST -H 'Content-Type: application/json' -H \"X-Flowd-Timestamp: $ts\" -H \"X-Hub-Signature-256: sha256=$sig\" --data \"$body\" " + q(url)
        : "curl -X POST -H 'Content-Type: application/json' --data " + q(body) + ' ' + q(url);
      const general = sign('{}');
      const withVars = sign(varBody);
      const urlInput = h('input', { id: 'hook-url', readonly: true, value: url, 'aria-label': 'Webhook URL', class: 'mono' });
      urlInput.addEventListener('focus', () => urlInput.select());
      box.append(
        h('label', { for: 'hook-url' }, 'URL — keep it secret: anyone with it can start runs'),
        h('div', { class: 'copyrow' }, urlInput, copyButton(url, 'URL')),
        h('h3', {}, 'Start a run with the default variables'),
        h('div', { class: 'copyrow' }, h('pre', { class: 'cmd', id: 'hook-curl' }, general), copyButton(general, 'Command')),
        h('h3', {}, 'Start a run with other variable values'),
        h('div', { class: 'copyrow' }, h('pre', { class: 'cmd', id: 'hook-curl-vars' }, withVars), copyButton(withVars, 'Command')),
        h('p', { class: 'hint' }, 'Keys that name declared variables override their defaults; other keys are ignored and listed in the answer. An Idempotency-Key header makes retries safe.'));
      const secretIn = h('input', { type: 'password', name: 'secret', autocomplete: 'off', placeholder: t.has_secret ? 'new secret' : 'a long random string', 'aria-label': 'Signature secret' });
      const rotate = h('button', { type: 'button', class: 'btn danger', id: 'hook-rotate' }, 'Rotate URL…');
      rotate.addEventListener('click', async () => {
        if (!confirm('Rotate the webhook URL of ' + name + '?\n\nThe current URL stops working at once; every system that calls it needs the new one.')) return;
        if (await act('rotate', null, rotate)) toast('New URL made; the old one answers 404');
      });
      const setSecret = h('button', { type: 'button', class: 'btn' }, t.has_secret ? 'Change secret' : 'Require a secret');
      setSecret.addEventListener('click', async () => {
        if (!secretIn.value) { secretIn.focus(); toast('Type the secret first', true); return; }
        if (await act('enable', { secret: secretIn.value }, setSecret)) toast('Secret saved; requests must be signed');
      });
      const removeSecret = t.has_secret ? h('button', { type: 'button', class: 'btn small ghost' }, 'Remove secret') : null;
      if (removeSecret) removeSecret.addEventListener('click', async () => {
        if (!confirm('Remove the signature secret? The URL alone will start runs.')) return;
        if (await act('enable', { secret: '' }, removeSecret)) toast('Secret removed');
      });
      box.append(
        h('h3', {}, 'Signature secret (optional)'),
        h('p', { class: 'hint' }, 'With a secret, requests must carry X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>, as GitHub, Gitea and Gogs send it. Saving it makes you the owner.'),
        h('div', { class: 'inline' }, secretIn, setSecret, removeSecret),
        h('h3', {}, 'Git hosts'),
        hostHelp(url, t.has_secret),
        h('div', { class: 'actions' }, rotate, h('a', { class: 'btn ghost', href: '/pipelines/' + encodeURIComponent(name) + '/deliveries' }, 'Deliveries →')));
    }
    load();
  }

  function hostHelp(url, hasSecret) {
    const sec = hasSecret ? 'the same secret' : '(empty, or set a secret above first)';
    const hosts = [
      ['GitHub', ['Repository → Settings → Webhooks → Add webhook.', 'Payload URL: the URL above; Content type: application/json.', 'Secret: ' + sec + '. Events: “Just the push event”.']],
      ['GitLab', ['Project → Settings → Webhooks → Add new webhook.', 'URL: the URL above; Trigger: Push events (and Tag push events).', 'Secret token: ' + sec + ' (sent as X-Gitlab-Token).']],
      ['Gitea / Forgejo', ['Repository → Settings → Webhooks → Add webhook → Gitea.', 'Target URL: the URL above; POST content type: application/json.', 'Secret: ' + sec + '. Trigger on: Push events.']],
      ['Gogs', ['Repository → Settings → Webhooks → Add webhook → Gogs.', 'Payload URL: the URL above; Content type: application/json.', 'Secret: ' + sec + '. When: Just the push event.']],
      ['Bitbucket', ['Repository settings → Webhooks → Add webhook.', 'URL: the URL above; Triggers: Repository push.', 'Secret: ' + sec + ' (Bitbucket Cloud signs with X-Hub-Signature).']],
      ['Codeup (Alibaba Cloud)', ['Repository → Settings → Webhooks → New webhook.', 'URL: the URL above; Trigger: Push events (and Tag push events).', 'Secret token: ' + sec + '.']],
    ];
    return h('div', {}, hosts.map(([host, steps]) => h('details', { class: 'host' }, h('summary', {}, host), h('ol', {}, steps.map(s => h('li', {}, s))))),
      h('p', { class: 'hint' }, 'Add a source: block with the repository URL to the definition to filter branches, tags and paths.'));
  }

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

  pages.deliveries = async function () {
    const root = $('#deliveries');
    const name = root.dataset.name;
    const tb = $('#dl-list tbody');
    const detail = $('#dl-detail');
    let before = null, selected = null;
    async function load(more) {
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
          h('td', {}, d.run_id ? h('a', { href: '/runs/' + d.run_id }, 'run ' + d.run_id) : h('span', { class: 'muted' }, '—')),
          h('td', {}, h('button', { type: 'button', class: 'btn small', onclick: () => show(d.id) }, 'Details')));
        tb.append(row);
      }
    }
    // show opens a delivery's details. Opening the one already open (or being fetched) does
    // nothing, and only the newest request renders: a slow answer can never replace the panel
    // (and its buttons) under the user's hand.
    let shownSeq = 0;
    async function show(id) {
      if (id === selected) return;
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
        outcome(result, rr, 'Redelivered');
        await load(false);
      });
      dry.addEventListener('click', async () => {
        busy(dry, true);
        const ct = headerValue(d.headers, 'Content-Type') || 'application/json';
        const rr = await api('POST', '/api/v1/pipelines/' + encodeURIComponent(name) + '/triggers/webhook/dry-run', d.body, { headers: { 'Content-Type': ct } });
        busy(dry, false);
        outcome(result, rr, 'Dry run');
        await load(false);
      });
      const trace = Array.isArray(d.trace) ? d.trace : [];
      detail.append(
        h('div', { class: 'cardhead' }, h('h2', {}, 'Delivery #' + d.id), h('div', { class: 'actions' }, redeliver, dry)),
        result,
        h('dl', { class: 'facts' },
          h('dt', {}, 'Received'), h('dd', {}, new Date(d.received_at).toLocaleString(), d.remote_addr ? ' from ' + d.remote_addr : ''),
          h('dt', {}, 'Answer'), h('dd', {}, String(d.status_code), d.error_code ? ' ' + d.error_code : ''),
          h('dt', {}, 'Run'), h('dd', {}, d.run_id ? h('a', { href: '/runs/' + d.run_id }, 'run ' + d.run_id) : '—')),
        h('h3', {}, 'Decision trace'),
        traceList(trace),
        h('h3', {}, 'Answer'),
        h('pre', { class: 'box' }, JSON.stringify(d.response, null, 2)),
        h('h3', {}, 'Headers'),
        h('pre', { class: 'box' }, Object.entries(d.headers || {}).map(([k, v]) => k + ': ' + [].concat(v).join(', ')).join('\n')),
        h('h3', {}, 'Body' + (d.body_truncated ? ' (cut at the size limit)' : '')),
        h('pre', { class: 'box', id: 'dl-body' }, pretty(d.body)));
    }
    function headerValue(hs, name) {
      for (const [k, v] of Object.entries(hs || {})) if (k.toLowerCase() === name.toLowerCase()) return [].concat(v)[0];
      return '';
    }
    function pretty(body) {
      try { return JSON.stringify(JSON.parse(body), null, 2); } catch (e) { return body || ''; }
    }
    function traceList(trace) {
      if (!trace.length) return h('p', { class: 'muted' }, 'No trace was kept.');
      return h('ol', { class: 'trace' }, trace.map(s => h('li', {}, icon(s.ok ? 'success' : 'failed'), h('span', { class: 'step-name' }, s.step), h('span', {}, s.detail || ''))));
    }
    function outcome(box, rr, what) {
      empty(box);
      const d = rr.data || {};
      const ok = rr.status >= 200 && rr.status < 300;
      box.append(h('div', { class: 'alert ' + (ok ? 'ok' : 'error') },
        h('strong', {}, what + ': ' + rr.status), ' ',
        d.run ? ['started ', h('a', { href: '/runs/' + d.run.id }, 'run #' + d.run.number)] : '',
        d.dry_run ? (d.would_start ? 'would start a run' : 'would start nothing') : '',
        d.error ? d.error.message : '',
        d.trace ? traceList(d.trace) : null));
    }
    $('#dl-refresh').addEventListener('click', () => load(false));
    $('#dl-older').addEventListener('click', () => load(true));
    await load(false);
    const first = $('#dl-list tr[data-id]');
    if (first && matchMedia('(min-width: 861px)').matches) show(Number(first.dataset.id));
  };

  pages.users = async function () {
    const tb = $('#user-list tbody');
    let me = null;
    async function load() {
      const [r, m] = await Promise.all([api('GET', '/api/v1/users'), me ? null : api('GET', '/api/v1/user')]);
      if (m && m.ok) me = m.data.username;
      empty(tb);
      if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 5 }, errText(r)))); return; }
      for (const u of r.data.users) {
        const self = u.username === me;
        const patch = async (body, msg, btn) => {
          busy(btn, true);
          const rr = await api('PATCH', '/api/v1/users/' + encodeURIComponent(u.username), body);
          busy(btn, false);
          if (!rr.ok) toast(errText(rr), true); else toast(msg);
          load();
        };
        const adminBtn = h('button', { type: 'button', class: 'btn small', disabled: self }, u.admin ? 'Remove admin' : 'Make admin');
        adminBtn.addEventListener('click', () => patch({ admin: !u.admin }, u.username + (u.admin ? ' is no longer an admin' : ' is now an admin'), adminBtn));
        const disBtn = h('button', { type: 'button', class: 'btn small' + (u.disabled ? '' : ' danger'), disabled: self }, u.disabled ? 'Enable' : 'Disable');
        disBtn.addEventListener('click', () => {
          if (!u.disabled && !confirm('Disable ' + u.username + '? Their sessions and tokens stop working.')) return;
          patch({ disabled: !u.disabled }, u.username + (u.disabled ? ' enabled' : ' disabled'), disBtn);
        });
        tb.append(h('tr', { 'data-user': u.username },
          h('td', {}, h('strong', {}, u.username), self ? h('span', { class: 'sub' }, 'you') : null),
          h('td', {}, u.admin ? h('span', { class: 'tag' }, 'admin') : 'user'),
          h('td', {}, u.disabled ? h('span', { class: 'badge s-canceled' }, h('span', { 'aria-hidden': 'true' }, '⊘'), ' disabled') : h('span', { class: 'badge s-success' }, h('span', { 'aria-hidden': 'true' }, '✓'), ' active')),
          h('td', { class: 'hide-sm' }, when(u.created_at)),
          h('td', {}, h('div', { class: 'actions' }, adminBtn, disBtn))));
      }
    }
    $('#user-add').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = e.target;
      const r = await api('POST', '/api/v1/users', { username: f.username.value.trim(), password: f.password.value, admin: f.admin.checked });
      if (!r.ok) { toast(errText(r), true); return; }
      toast('Added ' + r.data.username); f.reset(); load();
    });
    load();
  };

  // The servers and build agents sharing the database. Heartbeat ages come from the database's
  // clock (heartbeat_age_seconds), not this browser's; the list refreshes while it is open.
  pages.nodes = async function () {
    const tb = $('#node-list tbody');
    function age(s) {
      if (s < 1) return 'just now';
      if (s < 120) return Math.round(s) + ' s ago';
      if (s < 7200) return Math.round(s / 60) + ' min ago';
      if (s < 172800) return Math.round(s / 3600) + ' h ago';
      return Math.round(s / 86400) + ' d ago';
    }
    async function load() {
      const r = await api('GET', '/api/v1/nodes');
      empty(tb);
      if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 7 }, errText(r)))); return; }
      if (!r.data.nodes.length) tb.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No server or agent has registered yet.')));
      for (const n of r.data.nodes) {
        tb.append(h('tr', { 'data-node': n.name },
          h('td', {}, h('strong', {}, n.name), n.addr ? h('span', { class: 'sub mono' }, n.addr) : null),
          h('td', { class: 'hide-sm' }, n.kind,
            n.agent ? h('span', { class: 'sub mono' }, Object.keys(n.agent.labels || {}).sort().map(k => k + '=' + n.agent.labels[k]).join(', ') || 'no labels') : null,
            n.agent ? h('span', { class: 'sub' }, 'capacity ' + n.agent.capacity + (n.agent.paused ? ', paused' : '')) : null),
          h('td', { class: 'hide-sm mono' }, n.version || '—'),
          h('td', { class: 'hide-sm' }, when(n.started_at)),
          h('td', {}, h('time', { datetime: n.heartbeat_at, title: new Date(n.heartbeat_at).toLocaleString() }, age(n.heartbeat_age_seconds))),
          h('td', {}, String(n.jobs_held),
            ...(n.running || []).map(j => h('span', { class: 'sub' }, h('a', { href: '/runs/' + j.run_id }, j.pipeline + ' #' + j.run_number), ' ' + j.stage + ' / ' + j.job))),
          h('td', {}, n.live
            ? h('span', { class: 'badge s-success' }, h('span', { 'aria-hidden': 'true' }, '✓'), ' live')
            : h('span', { class: 'badge s-canceled' }, h('span', { 'aria-hidden': 'true' }, '⊘'), ' gone'),
            n.agent ? pauseButton(n) : null)));
      }
    }
    // An agent's Pause (no new jobs; the running ones go on) or Resume.
    function pauseButton(n) {
      const what = n.agent.paused ? 'resume' : 'pause';
      const b = h('button', { type: 'button', class: 'btn small', 'data-action': what }, n.agent.paused ? 'Resume' : 'Pause');
      b.addEventListener('click', async () => {
        const r = await api('POST', '/api/v1/agents/' + encodeURIComponent(n.name) + '/' + what);
        if (!r.ok) toast(errText(r), true); else toast((n.agent.paused ? 'Resumed ' : 'Paused ') + n.name);
        load();
      });
      return h('span', { class: 'sub' }, b);
    }
    const tokens = $('#agent-token-list tbody');
    async function loadTokens() {
      const r = await api('GET', '/api/v1/agent-tokens');
      empty(tokens);
      if (!r.ok) { tokens.append(h('tr', {}, h('td', { colspan: 5 }, errText(r)))); return; }
      if (!r.data.agent_tokens.length) tokens.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No agent token yet.')));
      for (const t of r.data.agent_tokens) {
        const labels = Object.keys(t.labels || {}).sort().map(k => k + '=' + t.labels[k]).join(', ');
        let action = h('span', { class: 'muted' }, 'revoked ', when(t.revoked_at));
        if (!t.revoked_at) {
          action = h('button', { type: 'button', class: 'btn small danger' }, 'Revoke');
          action.addEventListener('click', async () => {
            if (!confirm('Revoke “' + t.name + '”? Its agents stop at their next call and their running jobs are canceled.')) return;
            const rr = await api('DELETE', '/api/v1/agent-tokens/' + encodeURIComponent(t.name));
            if (!rr.ok) toast(errText(rr), true); else toast('Revoked ' + t.name + (rr.data.jobs_canceled ? '; ' + rr.data.jobs_canceled + ' running jobs canceled' : ''));
            loadTokens(); load();
          });
        }
        tokens.append(h('tr', { 'data-agent-token': t.name }, h('td', {}, h('strong', {}, t.name), h('span', { class: 'sub' }, 'by ' + t.created_by)),
          h('td', { class: 'hide-sm mono' }, labels || h('span', { class: 'muted' }, 'any')),
          h('td', { class: 'hide-sm' }, when(t.created_at)), h('td', {}, String(t.agents)), h('td', {}, action)));
      }
    }
    $('#agent-token-add').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = e.target;
      const labels = {};
      for (const kv of f.labels.value.split(',').map(s => s.trim()).filter(Boolean)) {
        const i = kv.indexOf('=');
        if (i <= 0) { toast('Labels are key=value pairs separated by commas, such as os=linux,arch=amd64', true); return; }
        labels[kv.slice(0, i).trim()] = kv.slice(i + 1).trim();
      }
      const r = await api('POST', '/api/v1/agent-tokens', { name: f.name.value.trim(), labels });
      if (!r.ok) { toast(errText(r), true); return; }
      f.reset();
      const out = $('#agent-token-new');
      out.hidden = false;
      empty(out).append(h('p', { class: 'alert ok' }, 'Copy the agent token now; it is not shown again. Put it in a file only the agent\'s user can read, and start the agent with --token-file.'),
        h('div', { class: 'copyrow' }, h('input', { readonly: true, value: r.data.token, class: 'mono', id: 'agent-token-value', 'aria-label': 'New agent token' }), copyButton(r.data.token, 'Agent token')));
      loadTokens();
    });
    await Promise.all([load(), loadTokens()]);
    setInterval(() => { if (!document.hidden) load(); }, 10000);
  };

  pages.tokens = async function () {
    const tb = $('#token-list tbody');
    async function load() {
      const r = await api('GET', '/api/v1/tokens');
      empty(tb);
      if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 4 }, errText(r)))); return; }
      if (!r.data.tokens.length) tb.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'You have no API tokens.')));
      for (const t of r.data.tokens) {
        const revoke = h('button', { type: 'button', class: 'btn small danger' }, 'Revoke');
        revoke.addEventListener('click', async () => {
          if (!confirm('Revoke “' + t.name + '”? Scripts using it stop working at once.')) return;
          const rr = await api('DELETE', '/api/v1/tokens/' + t.id);
          if (!rr.ok) toast(errText(rr), true); else toast('Token revoked');
          load();
        });
        tb.append(h('tr', {}, h('td', {}, t.name), h('td', {}, when(t.created_at)), h('td', {}, t.last_used_at ? when(t.last_used_at) : h('span', { class: 'muted' }, 'never')), h('td', {}, revoke)));
      }
    }
    $('#token-add').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = e.target;
      const me = await api('GET', '/api/v1/user');
      if (!me.ok) { toast(errText(me), true); return; }
      // Creating a token takes the password again (HTTP Basic), as the API asks.
      const basic = 'Basic ' + btoa(unescape(encodeURIComponent(me.data.username + ':' + f.password.value)));
      const r = await api('POST', '/api/v1/tokens', f.name.value.trim() ? { name: f.name.value.trim() } : null, { headers: { Authorization: basic }, noRedirect: true });
      const bad = $('#token-error');
      bad.hidden = r.ok;
      if (!r.ok) { bad.textContent = r.status === 401 ? 'Wrong password. No token was created.' : errText(r); f.password.focus(); return; }
      f.reset();
      const out = $('#token-new');
      out.hidden = false;
      empty(out).append(h('p', { class: 'alert ok' }, 'Copy the token now; it is not shown again.'),
        h('div', { class: 'copyrow' }, h('input', { readonly: true, value: r.data.token, class: 'mono', id: 'token-value', 'aria-label': 'New token' }), copyButton(r.data.token, 'Token')));
      load();
    });
    load();
  };

  // The caller's own password: the current one, the new one twice. A change signs every
  // session out, this one too, so the page then offers to sign in again.
  pages.account = async function () {
    const f = $('#password-change');
    const bad = $('#password-error');
    function fail(msg, field) { bad.textContent = msg; bad.hidden = false; if (field) field.focus(); }
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      bad.hidden = true;
      if (f.new.value !== f.again.value) { fail('The new passwords differ; type the same one twice.', f.again); return; }
      const btn = f.querySelector('button[type=submit]');
      btn.disabled = true;
      const r = await api('PUT', '/api/v1/user/password', { current_password: f.current.value, new_password: f.new.value }, { noRedirect: true });
      btn.disabled = false;
      if (r.status === 403 && r.data && r.data.error && r.data.error.code === 'wrong_password') { fail('Wrong current password. Nothing was changed.', f.current); return; }
      if (r.status === 401) { location.href = '/login?next=/account'; return; }
      if (!r.ok) { fail(errText(r), r.status === 400 ? f.new : null); return; }
      f.reset();
      f.hidden = true;
      $('#password-done').hidden = false;
      $('#password-done a').focus();
    });
  };

  const page = document.body.dataset.page;
  if (pages[page]) pages[page]().catch(e => { console.error(e); toast('Something went wrong on this page: ' + e.message, true); });
})();
