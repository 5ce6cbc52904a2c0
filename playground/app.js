// The playground's user interface. Every piece of log content is shown with textContent, never
// parsed as HTML, so a record carrying markup or script stays inert.

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });

const MAX_ROWS = 5000;
const MAX_LINK_SAMPLE = 8192;
const QUERY_BLOCK = /^query = '''\n?([\s\S]*?)'''[ \t]*$/m;

const state = {
  seedToml: '',
  baseToml: '',
  hardenedQuery: '',
  exampleExceptions: '',
  ruleId: 0,
  evaluationId: 0,
  results: [],
  fixtures: [],
  ruleOk: false,
};

function setStatus(text, name) {
  $('status').textContent = text;
  $('status').dataset.state = name;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function queryOf(toml) {
  const match = QUERY_BLOCK.exec(toml);
  return match ? match[1].replace(/\n$/, '') : '';
}

// The rule file with its query replaced, so edits keep the rule's metadata and MITRE mappings.
function tomlWithQuery(query) {
  if (query.includes("'''") || !QUERY_BLOCK.test(state.baseToml)) return null;
  // No newline before the closing quotes: the query is exactly the text, so error offsets
  // point into what the user typed.
  return state.baseToml.replace(QUERY_BLOCK, () => `query = '''\n${query}'''`);
}

// The query a profile starts from: the rule's own, or the seed rule's hardened query.
function defaultQuery(profile) {
  return profile === 'hardened' ? state.hardenedQuery : queryOf(state.baseToml);
}

function sendRule() {
  const query = $('query').value;
  const profile = $('profile').value;
  const exceptions = $('exceptions').value.trim() === '' ? undefined : $('exceptions').value;
  let source = 'query';
  let text = query;
  // The hardened profile belongs to the built-in rule: with it, the editor holds the profile's
  // query. A loaded rule file goes as TOML, and the engine says if it has no hardened profile.
  if (profile === 'faithful' || state.baseToml !== state.seedToml) {
    const toml = query === queryOf(state.baseToml) ? state.baseToml : tomlWithQuery(query);
    if (toml !== null) { source = 'toml'; text = toml; }
  }
  state.ruleId += 1;
  worker.postMessage({ type: 'rule', id: state.ruleId, source, text, profile, exceptions });
}

function sendLogs() {
  if (!state.ruleOk) return;
  state.evaluationId += 1;
  setStatus('Evaluating…', 'busy');
  worker.postMessage({ type: 'evaluate', id: state.evaluationId, text: $('logs').value });
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function showRule(rule) {
  const meta = $('rule-meta');
  clear(meta);
  meta.append(element('p', rule.name, 'name'));
  meta.append(element('p', `severity ${rule.severity} · risk score ${rule.riskScore} · ${rule.ruleId}`));
  const items = rule.exceptionItems === 1 ? '1 exception item' : `${rule.exceptionItems} exception items`;
  meta.append(element('p', `profile ${rule.profile} · ${items}`, 'profile'));
  if (rule.tactics.length) meta.append(element('p', `MITRE ATT&CK: ${rule.tactics.join(', ')} · ${rule.techniques.join(', ')}`));
  const warnings = $('query-warnings');
  clear(warnings);
  for (const w of rule.warnings) warnings.append(element('li', w));
}

// Byte offset (UTF-8) in the query to a character index in the JavaScript string.
function charIndex(text, byteOffset) {
  const bytes = new TextEncoder().encode(text);
  return new TextDecoder().decode(bytes.slice(0, byteOffset)).length;
}

function showRuleError(failure) {
  if (failure.kind === 'invalid-exceptions') {
    $('exceptions-error').hidden = false;
    $('exceptions-error').textContent = failure.message;
    return;
  }
  $('query-error').hidden = false;
  const where = failure.offset !== undefined ? ` at ${failure.offset}` : '';
  $('query-error-message').textContent = `${failure.message}${where}`;
  const context = $('query-error-context');
  clear(context);
  if (failure.offset !== undefined) {
    const query = $('query').value;
    const at = charIndex(query, failure.offset);
    context.append(document.createTextNode(query.slice(0, at)));
    context.append(element('mark', query.slice(at, at + 1) || ' '));
    context.append(document.createTextNode(query.slice(at + 1)));
  }
}

function recordLabel(r) {
  return r.index !== undefined ? `line ${r.line} #${r.index}` : `line ${r.line}`;
}

function showResults(results, millis) {
  state.results = results;
  const alertsOnly = $('alerts-only').checked;
  const body = $('results').tBodies[0];
  clear(body);
  let shown = 0;
  for (const [i, r] of results.entries()) {
    if (alertsOnly && r.verdict !== 'alert') continue;
    if (shown === MAX_ROWS) break;
    shown += 1;
    const row = document.createElement('tr');
    row.dataset.result = String(i);
    row.dataset.verdict = r.verdict;
    row.dataset.line = String(r.line);
    if (r.index !== undefined) row.dataset.index = String(r.index);
    row.append(element('td', recordLabel(r)));
    row.append(element('td', r.verdict, `verdict-${r.verdict}`));
    const exception = r.exception ? `suppressed by ${r.exception.item_id}` : undefined;
    row.append(element('td', r.family ?? exception ?? '—'));
    row.append(element('td', r.principal ?? '—'));
    row.append(element('td', r.shape ?? '—'));
    body.append(row);
  }
  const alerts = results.filter((r) => r.verdict === 'alert').length;
  const invalid = results.filter((r) => r.verdict === 'invalid').length;
  const suppressed = results.filter((r) => r.verdict === 'suppressed').length;
  const tuned = suppressed ? ` · ${suppressed} suppressed by exceptions` : '';
  $('summary').textContent = `${results.length} records · ${alerts} alerts${tuned} · ${invalid} invalid · evaluated in ${millis.toFixed(1)} ms`;
  const hidden = (alertsOnly ? alerts : results.length) - shown;
  $('truncated').hidden = hidden <= 0;
  $('truncated').textContent = `${hidden} more records are not listed.`;
  setStatus(`Ready: ${alerts} alerts in ${results.length} records`, 'ready');
}

function explanationNode(e) {
  const item = element('li');
  item.append(element('span', e.held ? '✓ ' : '✗ ', e.held ? 'held' : 'failed'));
  item.append(element('code', e.clause));
  if (e.field !== undefined) {
    const seen = e.seen && e.seen.length ? `seen: ${e.seen.join(', ')}` : '(no value)';
    item.append(element('span', `  ${seen}`, 'seen'));
  }
  if (e.children) {
    const list = element('ul');
    for (const child of e.children) list.append(explanationNode(child));
    item.append(list);
  }
  return item;
}

function showDetail(index) {
  const r = state.results[index];
  if (!r) return;
  for (const row of $('results').tBodies[0].rows) row.classList.toggle('selected', row.dataset.result === String(index));
  const by = r.exception
    ? ` by exception item ${r.exception.item_id}${r.exception.name ? ` (${r.exception.name})` : ''}`
    : '';
  $('detail-hint').textContent = `${recordLabel(r)}: ${r.verdict}${by}`;
  const tree = $('explanation');
  clear(tree);
  if (r.explanation) tree.append(explanationNode(r.explanation));
  $('alert-title').hidden = !r.alert;
  $('alert-json').hidden = !r.alert;
  $('alert-json').textContent = r.alert ? JSON.stringify(r.alert, null, 2) : '';
  $('record-error').hidden = !r.error;
  $('record-error').textContent = r.error ?? '';
}

// State in the URL fragment: the query, and the logs when they are small.
function encode(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function decode(text) {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

function linkState() {
  const parts = [`q=${encode($('query').value)}`];
  if ($('profile').value !== 'faithful') parts.push(`p=${$('profile').value}`);
  if ($('exceptions').value && $('exceptions').value.length <= MAX_LINK_SAMPLE) parts.push(`x=${encode($('exceptions').value)}`);
  if ($('logs').value.length <= MAX_LINK_SAMPLE) parts.push(`s=${encode($('logs').value)}`);
  return `#${parts.join('&')}`;
}

function readLinkState() {
  const params = new URLSearchParams(location.hash.slice(1));
  const read = (key) => { try { return params.has(key) ? decode(params.get(key)) : null; } catch { return null; } };
  const profile = params.get('p') === 'hardened' ? 'hardened' : 'faithful';
  return { query: read('q'), sample: read('s'), exceptions: read('x'), profile };
}

async function loadFixtures() {
  const response = await fetch('pkg/fixtures.json');
  state.fixtures = await response.json();
  const select = $('fixture');
  select.append(new Option('All shipped fixtures', '*'));
  for (const [i, f] of state.fixtures.entries()) select.append(new Option(`${f.edge} (${f.file})`, String(i)));
}

function allFixtures() {
  return state.fixtures.map((f) => f.text.trim()).join('\n');
}

worker.onmessage = (event) => {
  const message = event.data;
  if (message.type === 'ready') {
    state.seedToml = message.seedToml;
    state.baseToml = message.seedToml;
    state.hardenedQuery = message.hardenedQuery;
    state.exampleExceptions = message.exampleExceptions;
    const linked = readLinkState();
    $('profile').value = linked.profile;
    $('exceptions').value = linked.exceptions ?? '';
    $('query').value = linked.query ?? defaultQuery(linked.profile);
    loadFixtures().then(() => {
      $('logs').value = linked.sample ?? allFixtures();
      sendRule();
    });
  } else if (message.type === 'rule' && message.id === state.ruleId) {
    state.ruleOk = message.ok;
    if (message.ok) {
      $('query-error').hidden = true;
      $('exceptions-error').hidden = true;
      showRule(message.rule);
      sendLogs();
    } else {
      showRuleError(message.failure);
      setStatus('The rule has an error', 'rule-error');
    }
  } else if (message.type === 'results' && message.id === state.evaluationId) {
    showResults(message.results, message.millis);
  }
};

$('query').addEventListener('input', debounce(sendRule, 250));
$('exceptions').addEventListener('input', debounce(sendRule, 250));
$('profile').addEventListener('change', () => {
  // Swap the editor to the other profile's query, unless the user has edited it.
  const other = $('profile').value === 'hardened' ? 'faithful' : 'hardened';
  if ($('query').value === defaultQuery(other)) $('query').value = defaultQuery($('profile').value);
  sendRule();
});
$('example-exceptions').addEventListener('click', () => {
  $('exceptions').value = state.exampleExceptions;
  sendRule();
});
$('clear-exceptions').addEventListener('click', () => {
  $('exceptions').value = '';
  sendRule();
});
$('logs').addEventListener('input', debounce(sendLogs, 300));
$('alerts-only').addEventListener('change', () => showResults(state.results, 0));
$('fixture').addEventListener('change', (event) => {
  const value = event.target.value;
  if (value === '') return;
  $('logs').value = value === '*' ? allFixtures() : state.fixtures[Number(value)].text.trim();
  sendLogs();
});
$('results').addEventListener('click', (event) => {
  const row = event.target.closest('tr[data-result]');
  if (row) showDetail(Number(row.dataset.result));
});
$('reset-rule').addEventListener('click', () => {
  state.baseToml = state.seedToml;
  $('query').value = defaultQuery($('profile').value);
  sendRule();
});
$('rule-file').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  state.baseToml = await file.text();
  $('query').value = queryOf(state.baseToml);
  sendRule();
});
$('copy-link').addEventListener('click', async () => {
  history.replaceState(null, '', linkState());
  try { await navigator.clipboard.writeText(location.href); setStatus('Link copied', 'ready'); }
  catch { setStatus('The link is in the address bar', 'ready'); }
});
const logsPanel = $('logs-panel');
logsPanel.addEventListener('dragover', (event) => { event.preventDefault(); logsPanel.classList.add('dragging'); });
logsPanel.addEventListener('dragleave', () => logsPanel.classList.remove('dragging'));
logsPanel.addEventListener('drop', async (event) => {
  event.preventDefault();
  logsPanel.classList.remove('dragging');
  const texts = await Promise.all([...event.dataTransfer.files].map((f) => f.text()));
  if (texts.length) { $('logs').value = texts.join('\n'); sendLogs(); }
});
