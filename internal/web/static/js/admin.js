// The pages of the signed-in user and of admins: users, nodes, API tokens, account.
pages.users = async function () {
  const tb = $('#user-list tbody');
  const dlg = $('#user-dialog');
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
      const adminBtn = h('button', { type: 'button', class: 'btn small', disabled: self, 'data-action': 'admin' }, u.admin ? 'Remove admin' : 'Make admin');
      adminBtn.addEventListener('click', () => patch({ admin: !u.admin }, u.username + (u.admin ? ' is no longer an admin' : ' is now an admin'), adminBtn));
      const disBtn = h('button', { type: 'button', class: 'btn small' + (u.disabled ? '' : ' danger'), disabled: self, 'data-action': 'disable' }, u.disabled ? 'Enable' : 'Disable');
      disBtn.addEventListener('click', () => {
        if (!u.disabled && !confirm('Disable ' + u.username + '? Their sessions and tokens stop working.')) return;
        patch({ disabled: !u.disabled }, u.username + (u.disabled ? ' enabled' : ' disabled'), disBtn);
      });
      // Your own password is changed on the Account page (it asks for the current one), and
      // nobody deletes themselves: the server always keeps the admin who is signed in.
      const own = self ? [h('a', { class: 'btn small', href: '/account' }, 'Change password')]
        : [h('button', { type: 'button', class: 'btn small', 'data-action': 'reset', onclick: () => resetPassword(u.username) }, 'Reset password'),
          h('button', { type: 'button', class: 'btn small danger', 'data-action': 'delete', onclick: () => removeUser(u.username) }, 'Delete')];
      tb.append(h('tr', { 'data-user': u.username },
        h('td', {}, h('strong', {}, u.username), self ? h('span', { class: 'sub' }, 'you') : null),
        h('td', {}, u.admin ? h('span', { class: 'tag' }, 'admin') : 'user'),
        h('td', {}, u.disabled ? h('span', { class: 'badge s-canceled' }, h('span', { 'aria-hidden': 'true' }, '⊘'), ' disabled') : h('span', { class: 'badge s-success' }, h('span', { 'aria-hidden': 'true' }, '✓'), ' active')),
        h('td', { class: 'hide-sm' }, when(u.created_at)),
        h('td', {}, h('div', { class: 'actions' }, adminBtn, disBtn, ...own))));
    }
  }
  // ask opens the dialog with a heading and parts; its Cancel closes it.
  function ask(title, ...parts) {
    empty(dlg).append(h('h2', { id: 'user-dialog-title' }, title), ...parts,
      h('p', { class: 'alert error', id: 'user-dialog-error', role: 'alert', hidden: true }));
    dlg.showModal();
    const first = $('input, button.primary, button.danger', dlg);
    if (first) first.focus();
  }
  function dialogError(r) { const e = $('#user-dialog-error'); e.textContent = errText(r); e.hidden = false; }
  const cancel = (label) => h('button', { type: 'button', class: 'btn', onclick: () => dlg.close() }, label || 'Cancel');

  // Deleting a user takes their name typed again, and says first what goes with them.
  function removeUser(name) {
    const typed = h('input', { id: 'user-delete-name', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
    const go = h('button', { type: 'submit', class: 'btn danger', id: 'user-delete-go', disabled: true }, 'Delete ' + name);
    typed.addEventListener('input', () => { go.disabled = typed.value !== name; });
    const form = h('form', { class: 'stack' },
      h('label', {}, h('span', {}, 'Type ', h('strong', {}, name), ' to confirm'), typed),
      h('p', { class: 'actions' }, go, cancel()));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (typed.value !== name) return;
      busy(go, true);
      const r = await api('DELETE', '/api/v1/users/' + encodeURIComponent(name));
      busy(go, false);
      if (!r.ok) { dialogError(r); return; }
      dlg.close();
      toast('Deleted ' + name);
      load();
    });
    ask('Delete ' + name + '?',
      h('p', {}, 'This cannot be undone. ', h('strong', {}, name), '’s web sessions and API tokens stop working at once, and ', name,
        ' is taken off the members of every pipeline. Pipelines, runs and logs stay; runs keep the name.'),
      h('p', {}, 'Webhook triggers that ', name, ' enabled stop starting runs: each delivery is answered ',
        h('code', {}, '403 insufficient_permissions'), ' naming ', name, ', until an admin of the pipeline disables and enables the trigger again.'),
      h('p', { class: 'hint' }, 'To keep all of this, Disable the user instead.'),
      form);
  }

  // Resetting a password: the admin types a new one twice, or has one generated, which is
  // shown once to copy. Either way the user's web sessions end (as when they change it
  // themselves); their API tokens stay.
  function resetPassword(name) {
    const pw = h('input', { type: 'password', id: 'user-pw-new', autocomplete: 'new-password', minlength: 8, required: true });
    const again = h('input', { type: 'password', id: 'user-pw-again', autocomplete: 'new-password', minlength: 8, required: true });
    const set = h('button', { type: 'submit', class: 'btn primary', id: 'user-pw-set' }, 'Set password');
    const gen = h('button', { type: 'button', class: 'btn', id: 'user-pw-generate' }, 'Generate one instead');
    async function send(password, btn) {
      busy(btn, true);
      const r = await api('PATCH', '/api/v1/users/' + encodeURIComponent(name), { password });
      busy(btn, false);
      if (!r.ok) { dialogError(r); return false; }
      toast('Password of ' + name + ' changed');
      return true;
    }
    const form = h('form', { class: 'stack', id: 'user-pw-form' },
      h('label', {}, 'New password', pw), h('label', {}, 'The new password again', again),
      h('p', { class: 'actions' }, set, gen, cancel()));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (pw.value !== again.value) { dialogError({ data: { error: { message: 'The two passwords differ; type the same one twice.' } } }); again.focus(); return; }
      if (await send(pw.value, set)) dlg.close();
    });
    gen.addEventListener('click', async () => {
      const made = newPassword();
      if (!await send(made, gen)) return;
      const value = h('input', { readonly: true, value: made, class: 'mono', id: 'user-pw-value', 'aria-label': 'New password of ' + name });
      form.replaceWith(h('div', { class: 'stack' },
        h('p', { class: 'alert ok' }, 'The new password of ', h('strong', {}, name), ' is below. Copy it now; it is not shown again. Give it to ', name, ' over a channel you trust.'),
        h('div', { class: 'copyrow' }, value, copyButton(made, 'Password')),
        h('p', { class: 'actions' }, cancel('Done'))));
      value.select();
    });
    ask('Reset the password of ' + name,
      h('p', {}, name, '’s web sessions end at once, as when they change it themselves; their API tokens keep working (they revoke them on their API tokens page).'),
      form);
  }
  // newPassword is 20 random letters and digits (about 116 bits), without ones easily mixed up.
  function newPassword() {
    const abc = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
    let out = '';
    while (out.length < 20) {
      for (const b of crypto.getRandomValues(new Uint8Array(32))) if (b < 224 && out.length < 20) out += abc[b % 56];
    }
    return out;
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
  const load = liveReload(async () => {
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
  });
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
  // Live: servers and agents registering, pausing, tokens changing, and runs starting and
  // ending (the jobs held) come as events; a heartbeat's age and a node going quiet are the
  // clock's, so the list is also read again every 30 s while the page is seen.
  const both = () => { load(); loadTokens(); };
  liveStream({}, { nodes: both, runs: load, reconnect: both });
  setInterval(() => { if (!document.hidden) load(); }, 30000);
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
