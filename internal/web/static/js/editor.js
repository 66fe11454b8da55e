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
