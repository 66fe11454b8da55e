// The Definition tab's revision history: every saved revision (number, when, by whom), a line
// diff between any two of them computed here, and Restore for pipeline admins.
//
// revisionHistory(name, canAdmin, restored) draws it; restored(pipeline) is called with the
// pipeline after a restore. It returns {reload} for after a save in the editor.
function revisionHistory(name, canAdmin, restored) {
  const base = '/api/v1/pipelines/' + encodeURIComponent(name) + '/revisions';
  const tb = $('#rev-list tbody'), older = $('#rev-older');
  const selA = $('#rev-a'), selB = $('#rev-b');
  const texts = new Map(); // revision → its YAML, as fetched
  let list = [], next = null;

  async function load(more) {
    const q = new URLSearchParams({ limit: '50' });
    if (more && next) q.set('before', next);
    const r = await api('GET', base + '?' + q);
    if (!r.ok) { empty(tb).append(h('tr', {}, h('td', { colspan: 4 }, errText(r)))); return; }
    list = more ? list.concat(r.data.revisions) : r.data.revisions;
    next = r.data.next_before;
    older.hidden = !next;
    draw();
  }
  function draw() {
    empty(tb);
    for (const v of list) {
      const acts = [];
      if (v.revision > 1) {
        acts.push(h('button', { type: 'button', class: 'btn small', 'aria-label': 'Changes in revision ' + v.revision, onclick: () => compare(v.revision - 1, v.revision, true) }, 'Changes'));
      }
      if (canAdmin && !v.current) {
        acts.push(h('button', { type: 'button', class: 'btn small', id: 'rev-restore-' + v.revision, 'aria-label': 'Restore revision ' + v.revision, title: 'Restore this revision', onclick: () => restore(v.revision) }, 'Restore'));
      }
      tb.append(h('tr', { 'data-rev': v.revision },
        h('td', {}, h('strong', {}, 'revision ' + v.revision), v.current ? [' ', h('span', { class: 'tag' }, 'current')] : null),
        h('td', {}, when(v.created_at)),
        h('td', {}, v.created_by),
        h('td', {}, h('div', { class: 'rowacts' }, acts))));
    }
    const a = Number(selA.value), b = Number(selB.value);
    for (const sel of [selA, selB]) {
      empty(sel).append(...list.map((v) => h('option', { value: v.revision }, 'revision ' + v.revision + (v.current ? ' (current)' : ''))));
    }
    const newest = list.length ? list[0].revision : 0;
    if (newest) compare(a || Math.max(newest - 1, 1), b || newest, false);
  }
  async function text(rev) {
    if (!texts.has(rev)) {
      const r = await api('GET', base + '/' + rev);
      if (!r.ok) throw new Error(errText(r));
      texts.set(rev, r.data.yaml);
    }
    return texts.get(rev);
  }
  let seq = 0;
  async function compare(a, b, focus) {
    selA.value = String(a);
    selB.value = String(b);
    const my = ++seq;
    let ta, tb2;
    try {
      [ta, tb2] = await Promise.all([text(a), text(b)]);
    } catch (e) {
      $('#rev-summary').textContent = e.message;
      return;
    }
    if (my !== seq) return;
    const ops = lineDiff(ta.split('\n'), tb2.split('\n'));
    const added = ops.filter((o) => o.op === '+').length, removed = ops.filter((o) => o.op === '-').length;
    $('#rev-summary').textContent = a === b
      ? 'Revision ' + a + ' with itself: no changes.'
      : 'From revision ' + a + ' to revision ' + b + ': ' + added + (added === 1 ? ' line added, ' : ' lines added, ') + removed + (removed === 1 ? ' line removed.' : ' lines removed.');
    const pre = empty($('#rev-diff'));
    for (const o of ops) {
      const cls = o.op === '+' ? 'd-add' : o.op === '-' ? 'd-del' : 'd-same';
      const sr = o.op === '+' ? 'added: ' : o.op === '-' ? 'removed: ' : '';
      pre.append(h('span', { class: 'dl ' + cls }, h('span', { class: 'sr' }, sr), h('span', { class: 'd-op', 'aria-hidden': 'true' }, o.op === ' ' ? ' ' : o.op), ' ', o.text));
    }
    if (focus) pre.focus();
  }
  async function restore(rev) {
    const cur = list.find((v) => v.current);
    if (!confirm('Restore revision ' + rev + ' of ' + name + '?\n\nIts text becomes revision ' + ((cur ? cur.revision : 0) + 1) +
      '. Secret variables the current revision has keep their current values; a secret only revision ' + rev + ' had gets the value saved with it.')) return;
    const btn = $('#rev-restore-' + rev);
    busy(btn, true);
    const r = await api('POST', base + '/' + rev + '/restore');
    busy(btn, false);
    if (!r.ok) { toast('Not restored: ' + errText(r), true); return; }
    toast('Revision ' + rev + ' restored as revision ' + r.data.revision);
    restored(r.data);
    selA.value = ''; selB.value = '';
    await load(false);
    $('#rev-summary').focus();
  }
  const onPick = () => compare(Number(selA.value), Number(selB.value), false);
  selA.addEventListener('change', onPick);
  selB.addEventListener('change', onPick);
  older.addEventListener('click', () => load(true));
  load(false);
  return { reload: () => { selA.value = ''; selB.value = ''; return load(false); } };
}

// lineDiff returns the lines of a and b as a shortest edit script: {op: ' ' | '-' | '+', text},
// common lines kept, removed lines before added ones. The common start and end are cut first;
// the rest is a longest common subsequence (LCS) table, fine for definitions of a few thousand
// lines.
function lineDiff(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length, endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; }
  const n = endA - start, m = endB - start;
  // lcs[i][j]: the LCS length of a[start+i..endA) and b[start+j..endB), in one flat array.
  const w = m + 1, lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] = a[start + i] === b[start + j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    }
  }
  const out = a.slice(0, start).map((text) => ({ op: ' ', text }));
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[start + i] === b[start + j]) { out.push({ op: ' ', text: a[start + i] }); i++; j++; }
    else if (j >= m || (i < n && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) { out.push({ op: '-', text: a[start + i] }); i++; }
    else { out.push({ op: '+', text: b[start + j] }); j++; }
  }
  return out.concat(a.slice(endA).map((text) => ({ op: ' ', text })));
}
