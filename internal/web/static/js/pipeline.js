// A pipeline's page (/pipelines/NAME): tabs Runs, Definition (with its revision history),
// Webhook (panel, dry run, audit log), Members and Settings (trust, delete).
pages.pipeline = async function () {
  const root = $('#pipeline');
  const name = root.dataset.name;
  const canRun = root.dataset.canRun === 'true';
  const canAdmin = root.dataset.canAdmin === 'true';
  const base = '/api/v1/pipelines/' + encodeURIComponent(name);
  let def, revs = null;
  const ed = editor($('#definition .editor'), { saved: (p) => { def = p; drawDef(); if (revs) revs.reload(); } });
  const showTab = tabStrip($('#pipeline [role=tablist]'));

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
  // The Definition tab says whether it is; global admins mark and unmark it in Settings.
  function drawTrust() {
    const text = def.trusted ? 'trusted by ' + def.trusted_by : 'not trusted';
    empty($('#trust')).append(h('span', { title: 'A trusted pipeline may run on a server whose steps run as its own OS user' }, '· ' + text));
    const box = $('#trust-settings');
    if (!box) return;
    empty(box).append(h('p', { id: 'trust-state' }, def.trusted ? ['This pipeline is ', h('strong', {}, 'trusted'), ' by ' + def.trusted_by + '.'] : ['This pipeline is ', h('strong', {}, 'not trusted'), '.']));
    if (root.dataset.globalAdmin !== 'true') {
      box.append(h('p', { class: 'muted' }, 'Only global admins mark pipelines trusted.'));
      return;
    }
    const btn = h('button', { type: 'button', class: 'btn', id: 'trust-toggle' }, def.trusted ? 'Untrust' : 'Trust');
    btn.addEventListener('click', async () => {
      busy(btn, true);
      const r = await api('POST', base + (def.trusted ? '/untrust' : '/trust'));
      busy(btn, false);
      if (!r.ok) { toast(errText(r), true); return; }
      def = r.data;
      drawTrust();
      $('#trust-toggle').focus();
      toast(def.trusted ? 'Trusted: it may run where steps run as the server\'s user' : 'No longer trusted');
    });
    box.append(btn);
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

  if (canAdmin) deleteForm(name);

  const r = await api('GET', base);
  if (!r.ok) { toast(errText(r), true); return; }
  def = r.data;
  drawDef();
  // An unsaved edit the editor brought back (after signing in again) is shown at once.
  if ($('#yaml-restored')) showTab('definition', false);
  runHistory(name, canRun);
  schedulesPanel(name);
  loadMembers();
  revs = revisionHistory(name, canAdmin, (p) => { def = p; drawDef(); });
  webhookPanel(name, def, canAdmin, canRun);
};

// deleteForm wires Settings' "Delete this pipeline": the button works once the pipeline's name
// is typed; after the delete the pipelines list says so.
function deleteForm(name) {
  const input = $('#delete-name'), btn = $('#delete-pipeline');
  input.addEventListener('input', () => { btn.disabled = input.value.trim() !== name; });
  $('#delete-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (input.value.trim() !== name) { input.focus(); return; }
    busy(btn, true);
    const r = await api('DELETE', '/api/v1/pipelines/' + encodeURIComponent(name));
    if (!r.ok) { busy(btn, false); toast('Not deleted: ' + errText(r), true); return; }
    flash('Pipeline ' + name + ' deleted with its runs');
    location.href = '/';
  });
}

// The webhook trigger panel of a pipeline page, its dry run and its audit log.
async function webhookPanel(name, def, canAdmin, canRun) {
  const base = '/api/v1/pipelines/' + encodeURIComponent(name) + '/triggers/webhook';
  const box = $('#hook');
  const sw = $('#hook-enabled');
  async function load() {
    const r = await api('GET', base);
    if (!r.ok) { empty(box).append(h('p', { class: 'alert error' }, errText(r))); return; }
    draw(r.data);
  }
  // act changes the trigger. The control that asked keeps the keyboard focus: the panel is
  // drawn anew, so a button of it is found again by its id.
  async function act(path, body, btn) {
    busy(btn, true);
    const r = await api('POST', base + '/' + path, body);
    busy(btn, false);
    if (canAdmin) hookAudit(name);
    if (!r.ok) { toast(errText(r), true); load(); return null; }
    draw(r.data);
    const again = btn.id && document.getElementById(btn.id);
    if (again) again.focus();
    return r.data;
  }
  // The switch is never disabled while its change is sent (a disabled control loses the
  // focus): a change made meanwhile is undone, and the answer sets its state.
  let switching = false;
  if (sw) sw.addEventListener('change', async () => {
    if (switching) { sw.checked = !sw.checked; return; }
    switching = true;
    sw.setAttribute('aria-busy', 'true');
    const on = sw.checked;
    const t = await act(on ? 'enable' : 'disable', null, {});
    switching = false;
    sw.removeAttribute('aria-busy');
    if (t) toast(on ? 'Webhook enabled; you are its owner' : 'Webhook disabled; its URL answers 404');
  });
  if (canRun) hookDryRun(name, def);
  if (canAdmin) hookAudit(name);
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
    const setSecret = h('button', { type: 'button', class: 'btn', id: 'hook-secret-set' }, t.has_secret ? 'Change secret' : 'Require a secret');
    setSecret.addEventListener('click', async () => {
      if (!secretIn.value) { secretIn.focus(); toast('Type the secret first', true); return; }
      if (await act('enable', { secret: secretIn.value }, setSecret)) toast('Secret saved; requests must be signed');
    });
    const removeSecret = t.has_secret ? h('button', { type: 'button', class: 'btn small ghost', id: 'hook-secret-remove' }, 'Remove secret') : null;
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

// hookAudit lists who enabled, disabled or rotated the webhook trigger, and when (admins).
async function hookAudit(name) {
  const r = await api('GET', '/api/v1/pipelines/' + encodeURIComponent(name) + '/triggers/webhook/audit?limit=50');
  const tb = empty($('#audit-list tbody'));
  if (!r.ok) { tb.append(h('tr', {}, h('td', { colspan: 4 }, errText(r)))); return; }
  if (!r.data.audit.length) tb.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'Nothing yet: the trigger was never changed.')));
  for (const a of r.data.audit) {
    tb.append(h('tr', {}, h('td', {}, when(a.at)), h('td', {}, a.actor), h('td', {}, h('strong', {}, a.action)), h('td', { class: 'muted' }, a.detail || '')));
  }
}

// hookDryRun wires the Webhook tab's dry run: a body as a caller would send it, through the
// trigger, starting nothing. The body starts as an override of the first variable.
function hookDryRun(name, def) {
  const form = $('#hook-try-form'), result = $('#hook-try-result'), btn = $('#hook-try-run');
  const first = def.variables.find((v) => !v.secret);
  if (first) form.body.value = JSON.stringify({ [first.name]: first.options.find((o) => o !== first.default) || 'from-dry-run' }, null, 2);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    busy(btn, true);
    const rr = await api('POST', '/api/v1/pipelines/' + encodeURIComponent(name) + '/triggers/webhook/dry-run', form.body.value, { headers: { 'Content-Type': 'application/json' } });
    busy(btn, false);
    hookOutcome(result, rr, 'Dry run');
  });
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
