// A webhook answer shown in full (dry run, redelivery): the verdict, the run it started (as
// #N, like everywhere), the variables the run gets or would get as the trigger resolved them
// (secrets as ***), ignored keys, the commit, the concurrency group, every problem, and the
// decision trace. Used by the deliveries page and the pipeline page's Webhook tab.
function hookOutcome(box, rr, what) {
  empty(box);
  const d = rr.data || {};
  const ok = rr.status >= 200 && rr.status < 300;
  let verdict = '';
  if (d.run) verdict = ['started ', runLink(d.run.id, d.run.number)];
  else if (d.dry_run) verdict = d.would_start ? 'would start a run' : 'would start nothing' + (d.skipped ? ': ' + d.skipped : '');
  else if (d.skipped) verdict = 'started nothing: ' + d.skipped;
  else if (d.error) verdict = d.error.message || d.error.code;
  const facts = [];
  const vars = d.variables && Object.keys(d.variables);
  if (vars && vars.length) {
    facts.push(h('dt', {}, d.run ? 'Variables' : 'Variables it would get'), h('dd', {},
      h('table', { class: 'list compact vars' }, h('tbody', {}, vars.sort().map((k) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', {}, h('code', {}, d.variables[k] === '' ? '""' : d.variables[k]))))))));
  }
  if (d.ignored && d.ignored.length) facts.push(h('dt', {}, 'Ignored keys'), h('dd', {}, d.ignored.map((k) => h('code', {}, k)).reduce((a, el) => a.concat(a.length ? [', ', el] : [el]), []), ' (not declared variables)'));
  if (d.git && d.git.commit_sha) facts.push(h('dt', {}, 'Commit'), h('dd', { class: 'gitline' }, gitParts(d.git)));
  if (d.concurrency_group) facts.push(h('dt', {}, 'Concurrency group'), h('dd', {}, h('code', {}, d.concurrency_group)));
  if (d.delivery) facts.push(h('dt', {}, 'Recorded as'), h('dd', {}, 'delivery #' + d.delivery + (d.dry_run ? ' (dry run)' : '')));
  const problems = d.error && d.error.problems;
  box.append(h('div', { class: 'alert ' + (ok ? 'ok' : 'error') + ' outcome' },
    h('p', {}, h('strong', {}, what + ': ' + rr.status), ' — ', verdict),
    problems && problems.length ? h('ul', { class: 'problems' }, problems.map((p) => h('li', {}, p.key ? [h('code', {}, p.key), ': '] : '', p.message))) : null,
    facts.length ? h('dl', { class: 'facts' }, facts) : null,
    d.trace ? [h('h3', {}, 'Decision trace'), traceSteps(d.trace)] : null));
}

// runLink is a run as every page names it: #N, a link to its page.
function runLink(id, number) {
  return h('a', { href: '/runs/' + id, title: 'run id ' + id }, number ? '#' + number : 'run ' + id);
}

// traceSteps lists a webhook's decision trace, each step marked passed or refused.
function traceSteps(trace) {
  if (!trace || !trace.length) return h('p', { class: 'muted' }, 'No trace was kept.');
  return h('ol', { class: 'trace' }, trace.map(s => h('li', {}, icon(s.ok ? 'success' : 'failed'), h('span', { class: 'step-name' }, s.step), h('span', {}, s.detail || ''))));
}
