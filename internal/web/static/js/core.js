// flowd UI: progressive enhancement over server-rendered pages. Every read and change goes
// through the JSON API (docs/api.md) with the session cookie and, for changes, X-CSRF-Token.
//
// core.js is the shared part. Every script in this folder is one part of /static/app.js: the
// server joins them in one strict function scope, core.js first, main.js last, the rest by
// name (they only define; main.js starts the page). See web.go's appJS.
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
// duration says how long from start to end (now while end is empty): "120 ms", "2.4 s",
// "3 m 05 s", "1 h 02 m"; nothing without a start.
function duration(start, end) {
  if (!start) return '';
  return durationText((end ? new Date(end) : new Date()) - new Date(start));
}
function durationText(ms) {
  ms = Math.max(0, Math.round(ms));
  if (ms < 1000) return ms + ' ms';
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return (tenths / 10).toFixed(1) + ' s';
  const pad = n => (n < 10 ? '0' : '') + n;
  let s = Math.round(ms / 1000);
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + ' m ' + pad(s) + ' s';
  return Math.floor(m / 60) + ' h ' + pad(m % 60) + ' m';
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
// triggerText says what started run r and as whom; a scheduled run's detail (run.schedule)
// also names its schedule and fire time.
function triggerText(r) {
  let how = { manual: 'started by hand', webhook: 'webhook', push: 'Git push', cron: 'scheduled' }[r.trigger] || r.trigger;
  if (r.schedule) how += ' (' + r.schedule.schedule + ', for ' + new Date(r.schedule.fire_at).toLocaleString() + ')';
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

// ---- pages -------------------------------------------------------------------------------
const pages = {};
