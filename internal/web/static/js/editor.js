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

// ---- YAML highlighting ---------------------------------------------------------------------
// yamlLine splits one line of a pipeline's YAML into tokens [class, text] (class '' is plain
// text) and says the state the next line starts in. The state is '' or, inside a block scalar
// (`run: |`), 'b' + the column its content must be indented past. Only this state crosses
// lines, so a line's tokens depend on its text and the state it starts in, and nothing else.
const YAML_NUMBER = /^[-+]?(?:\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|0x[0-9a-fA-F]+|0o[0-7]+|\.inf|\.nan)$/;
const YAML_CONST = /^(?:true|false|yes|no|on|off|null|~)$/i;
// a key: quoted, or plain up to the first ':' that a space or the line's end follows
const YAML_KEY = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s"'#[\]{},][^#]*?)(\s*:)(?=\s|$)/;
const YAML_VAR = /\$\{\{.*?\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g;
function yamlVars(out, text, cls) { // text with $VAR, ${VAR} and ${{ … }} picked out
  let at = 0;
  for (const m of text.matchAll(YAML_VAR)) {
    if (m.index > at) out.push([cls, text.slice(at, m.index)]);
    out.push(['y-var', m[0]]);
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push([cls, text.slice(at)]);
}
function yamlScalar(out, text) { // a plain value (no comment in it)
  const t = text.trimEnd();
  if (YAML_NUMBER.test(t) || YAML_CONST.test(t)) out.push(['y-num', t]);
  else yamlVars(out, t, '');
  if (t.length < text.length) out.push(['', text.slice(t.length)]);
}
function yamlFlow(out, text) { // [a, "b", {k: v}] up to a comment
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if ('[]{},'.includes(c)) { out.push(['y-punct', c]); i++; continue; }
    if (c === ' ') { const j = text.slice(i).search(/[^ ]/); const n = j < 0 ? text.length - i : j; out.push(['', text.slice(i, i + n)]); i += n; continue; }
    if (c === '#' && (i === 0 || text[i - 1] === ' ')) { out.push(['y-comment', text.slice(i)]); return; }
    if (c === '"' || c === "'") {
      const m = (c === '"' ? /^"(?:[^"\\]|\\.)*"?/ : /^'(?:[^']|'')*'?/).exec(text.slice(i));
      yamlVars(out, m[0], 'y-str'); i += m[0].length; continue;
    }
    const m = /^[^[\]{},]*?(?=[[\]{},]|\s#|$)/.exec(text.slice(i));
    const word = m[0] || c;
    const k = /^([^:]*?)(\s*:)(?=\s|$)(.*)$/.exec(word);
    if (k) { out.push(['y-key', k[1]], ['y-punct', k[2]]); yamlScalar(out, k[3]); } else yamlScalar(out, word);
    i += word.length;
  }
}
function yamlLine(line, state) {
  const out = [];
  const indent = /^ */.exec(line)[0].length;
  if (state) { // inside a block scalar while the line is blank or indented past the key
    const col = Number(state.slice(1));
    if (!line.trim() || indent > col) { yamlVars(out, line, 'y-str'); return { toks: out, state }; }
  }
  let rest = line.slice(indent), col = indent;
  if (indent) out.push(['', line.slice(0, indent)]);
  if (/^(?:---|\.\.\.)(?:\s|$)/.test(rest)) { out.push(['y-punct', rest.slice(0, 3)]); rest = rest.slice(3); col += 3; }
  for (let m; rest && (m = /^-(?: +|$)/.exec(rest));) { // list dashes, one or more
    out.push(['y-dash', '-']);
    if (m[0].length > 1) out.push(['', m[0].slice(1)]);
    rest = rest.slice(m[0].length); col += m[0].length;
  }
  let keyCol = col - 1; // a value right after dashes belongs to the item: its content is indented past the dash
  const key = YAML_KEY.exec(rest);
  if (key) {
    out.push(['y-key', key[1]], ['y-punct', key[2]]);
    rest = rest.slice(key[0].length); keyCol = col;
  }
  // the value: anchors, aliases and tags, then a comment, a block scalar, a flow, a quoted or a plain scalar
  for (let m; (m = /^(\s*)([&*!][^\s,[\]{}]*)/.exec(rest));) {
    if (m[1]) out.push(['', m[1]]);
    out.push(['y-anchor', m[2]]);
    rest = rest.slice(m[0].length);
  }
  const sp = /^\s*/.exec(rest)[0];
  if (sp) { out.push(['', sp]); rest = rest.slice(sp.length); }
  if (!rest) return { toks: out, state: '' };
  if (rest[0] === '#') { out.push(['y-comment', rest]); return { toks: out, state: '' }; } // at the line's start or after a space
  const block = /^([|>][-+0-9]*)(\s+#.*|\s*)$/.exec(rest);
  if (block) {
    out.push(['y-punct', block[1]]);
    if (block[2]) yamlComment(out, block[2]);
    return { toks: out, state: 'b' + keyCol };
  }
  if (rest[0] === '[' || rest[0] === '{') { yamlFlow(out, rest); return { toks: out, state: '' }; }
  const q = rest[0] === '"' ? /^"(?:[^"\\]|\\.)*"/.exec(rest) : rest[0] === "'" ? /^'(?:[^']|'')*'/.exec(rest) : null;
  if (q) {
    yamlVars(out, q[0], 'y-str');
    rest = rest.slice(q[0].length);
    if (rest) yamlComment(out, rest);
    return { toks: out, state: '' };
  }
  const c = rest.search(/\s#/);
  yamlScalar(out, c < 0 ? rest : rest.slice(0, c));
  if (c >= 0) yamlComment(out, rest.slice(c));
  return { toks: out, state: '' };
}
function yamlComment(out, text) { // spaces, then a comment if one starts
  const i = text.indexOf('#');
  if (i < 0) { out.push(['', text]); return; }
  if (i) out.push(['', text.slice(0, i)]);
  out.push(['y-comment', text.slice(i)]);
}

// highlighter fills pre (a layer behind the textarea, whose text is transparent) with one
// span per line. paint(text) re-tokenises only the lines that changed since the last paint
// (and those after them whose starting state changed), so typing in a 2,000-line definition
// touches a line or two, not the whole layer. Tokens become text nodes: never markup.
function highlighter(pre) {
  let lines = [], starts = [], ends = [], els = []; // per line: text, state in, state out, span
  const cache = new Map(); // state + '\n' + text → tokens
  function render(text, state, last) {
    const k = state + '\n' + text;
    let r = cache.get(k);
    if (!r) {
      r = yamlLine(text, state);
      if (cache.size > 5000) cache.clear();
      cache.set(k, r);
    }
    return { el: h('span', { class: 'ln' }, r.toks.map(([cls, t]) => cls ? h('span', { class: cls }, t) : t), last ? '' : '\n'), state: r.state };
  }
  // paint shows text and answers how many lines it rendered anew.
  return function paint(text) {
    const now = text.split('\n');
    const n = now.length, m = lines.length;
    let p = 0; // lines equal at the start (a line that was last and is no longer differs: its newline)
    while (p < n && p < m && now[p] === lines[p] && (p === n - 1) === (p === m - 1)) p++;
    if (p === n && n === m) return 0;
    let s = 0; // lines equal at the end
    while (s < n - p && s < m - p && now[n - 1 - s] === lines[m - 1 - s]) s++;
    const S = { starts: starts.slice(0, p), ends: ends.slice(0, p), els: els.slice(0, p) };
    let state = p ? ends[p - 1] : '', made = 0;
    const at = s ? els[m - s] : null;
    for (let i = p; i < n - s; i++) {
      const r = render(now[i], state, i === n - 1);
      pre.insertBefore(r.el, at);
      S.starts.push(state); S.ends.push(r.state); S.els.push(r.el);
      state = r.state; made++;
    }
    for (let j = p; j < m - s; j++) els[j].remove();
    // the lines after the change stay as they are once one starts in the state it started in
    let k = 0;
    for (; k < s && starts[m - s + k] !== state; k++) {
      const j = m - s + k, r = render(now[n - s + k], state, n - s + k === n - 1);
      els[j].replaceWith(r.el);
      S.starts.push(state); S.ends.push(r.state); S.els.push(r.el);
      state = r.state; made++;
    }
    for (; k < s; k++) {
      const j = m - s + k;
      S.starts.push(starts[j]); S.ends.push(ends[j]); S.els.push(els[j]);
    }
    lines = now; starts = S.starts; ends = S.ends; els = S.els;
    return made;
  };
}

// A textarea with line numbers; problems (line:column) come from the API's validator as you
// type, and from the save itself. Tab indents by two spaces and Shift+Tab outdents (the
// selected lines, or the caret's); Esc then Tab leaves the editor, as GitHub's does. Enter
// keeps the line's indentation, two more after a key that opens a block (`steps:`, `run: |`),
// and continues a list item `- name: x` at its content. The YAML is highlighted on a layer
// behind the textarea, whose own text is transparent: the textarea stays the one place to
// type, select, undo and read for a screen reader.
function editor(root, opts) {
  opts = opts || {};
  const mode = root.dataset.mode;
  const draftName = mode === 'create' ? NEW_PIPELINE : root.dataset.name;
  const ta = h('textarea', { spellcheck: 'false', autocapitalize: 'off', 'aria-label': 'Pipeline definition (YAML)', id: 'yaml',
    'aria-describedby': mode === 'view' ? null : 'yaml-keys' });
  ta.setAttribute('wrap', 'off');
  ta.classList.add('hl-on');
  const nums = h('div', { class: 'nums' });
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' }, nums);
  const layer = h('pre', { class: 'hl', 'aria-hidden': 'true' });
  const paint = highlighter(layer);
  const state = h('span', { class: 'muted', id: 'yaml-state', 'aria-live': 'polite' });
  const problems = h('ul', { class: 'problems', id: 'yaml-problems' });
  const notice = h('div', { id: 'yaml-notice', role: 'status' });
  const keys = mode === 'view' ? null : h('span', { class: 'hint', id: 'yaml-keys' }, 'Tab indents · Esc then Tab leaves the editor');
  const save = mode === 'view' ? null : h('button', { type: 'button', class: 'btn primary', id: 'yaml-save' }, mode === 'create' ? 'Create pipeline' : 'Save');
  if (mode === 'view') ta.readOnly = true;
  root.append(notice, h('div', { class: 'edwrap' }, gutter, h('div', { class: 'edfield' }, layer, ta)), h('div', { class: 'edbar' }, state, h('span', { class: 'edact' }, keys, save)), problems);
  let bad = new Set();
  let clean = '', revision = 0; // the text as the server has it, and its revision
  unsaved.add(() => !ta.readOnly && ta.value !== clean);
  // lines paints the text's colours and numbers its lines (anew only when the count or the
  // lines with problems changed).
  let numbered = '';
  function lines() {
    paint(ta.value);
    let n = 1;
    for (let i = ta.value.indexOf('\n'); i >= 0; i = ta.value.indexOf('\n', i + 1)) n++;
    const key = n + ':' + Array.from(bad).join(',');
    if (key !== numbered) {
      numbered = key;
      empty(nums);
      gutter.style.width = 'calc(' + Math.max(2, String(n).length) + 'ch + .8rem + 1px)';
      for (let i = 1; i <= n; i++) {
        nums.append(bad.has(i) ? h('span', { class: 'bad' }, String(i)) : String(i), i < n ? '\n' : '');
      }
    }
    fit(); scrolled();
  }
  // fit keeps the layer inside the textarea's scrollbars, so both scroll as far.
  function fit() {
    layer.style.right = (ta.offsetWidth - ta.clientWidth) + 'px';
    layer.style.bottom = (ta.offsetHeight - ta.clientHeight) + 'px';
  }
  if (window.ResizeObserver) new ResizeObserver(() => { fit(); scrolled(); }).observe(ta);
  function scrolled() {
    gutter.scrollTop = ta.scrollTop;
    layer.scrollTop = ta.scrollTop;
    layer.scrollLeft = ta.scrollLeft;
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
  // newline breaks the line at the caret as Enter would, indented for what the line before the
  // caret opens: its own indentation; a list item's content (`- name: x` → under `name`); and
  // two more after a key whose value follows on the next lines (`steps:`, `run: |`).
  function newline() {
    const v = ta.value, s = ta.selectionStart, e = ta.selectionEnd;
    const from = v.lastIndexOf('\n', s - 1) + 1;
    const before = v.slice(from, s);
    let n = Math.min(/^ */.exec(v.slice(from))[0].length, before.length);
    const item = /^( *)((?:- +)+)(?=[^\s#])/.exec(before);
    const bare = before.replace(/(^|\s)#.*$/, '').trimEnd();
    const opens = /:$/.test(bare) || /:\s+[|>][-+0-9]*$/.test(bare);
    if (item && (opens || YAML_KEY.test(before.slice(item[0].length)))) n = item[0].length;
    if (opens && bare.trim()) n += 2;
    const text = '\n' + ' '.repeat(n);
    replace(s, e, text, s + text.length, s + text.length);
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
  // Enter is taken at keypress, where the browser would type its line break (a keydown that
  // prevents it may still be followed by one, as from a remote keyboard).
  ta.addEventListener('keypress', (e) => {
    if (e.key !== 'Enter' || e.ctrlKey || e.altKey || e.metaKey || e.isComposing || ta.readOnly) return;
    e.preventDefault(); newline();
  });
  ta.addEventListener('blur', () => { escaped = false; });
  ta.addEventListener('scroll', scrolled);
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
