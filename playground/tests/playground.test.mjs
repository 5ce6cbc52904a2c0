// End-to-end tests of the rule playground in headless Chromium, and a byte-for-byte parity
// check of the wasm-bindgen build against the native engine. Run by `cargo xtask test`, which
// builds the page (playground/pkg), installs Chromium and playwright-core, and builds
// target/debug/host-test serve (the harness's development server) and target/debug/vmext-detect
// (the native reference).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));
const detect = `${root}target/debug/vmext-detect`;
const harness = `${root}target/debug/host-test`;
const output = `${root}playground/test-output`;
const fixtures = JSON.parse(readFileSync(`${root}playground/pkg/fixtures.json`, 'utf8'));

let server;
let base;
let browser;
const externalRequests = [];

before(async () => {
  mkdirSync(output, { recursive: true });
  server = spawn(harness, ['serve', '--port', '0', `${root}playground`], { stdio: ['ignore', 'pipe', 'inherit'] });
  base = await new Promise((resolve, reject) => {
    let seen = '';
    server.stdout.on('data', (chunk) => {
      seen += chunk;
      const match = /on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(seen);
      if (match) resolve(match[1]);
    });
    server.on('exit', (code) => reject(new Error(`the server exited (${code})`)));
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

// A page with the network cut: anything not served by our localhost server is refused and
// recorded. Dialogs (alert, confirm) are recorded too: a hostile record must never open one.
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.dialogs = [];
  page.on('dialog', (dialog) => { page.dialogs.push(dialog.message()); dialog.dismiss(); });
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base)) return route.continue();
    externalRequests.push(url);
    return route.abort();
  });
  await page.goto(base);
  await page.waitForSelector('#status[data-state="ready"]', { timeout: 60_000 });
  return page;
}

// Waits for the evaluation that an action starts, and returns the verdicts shown.
async function verdictsAfter(page, action) {
  await page.evaluate(() => { document.getElementById('status').dataset.state = 'waiting'; });
  await action();
  await page.waitForSelector('#status[data-state="ready"], #status[data-state="rule-error"]', { timeout: 60_000 });
  return page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.dataset.verdict));
}

// The native engine's canonical result texts for a fixture, exactly as it wrote them: each
// line is `{"source":…,"result":<canonical>}`.
function nativeResults(file, options = []) {
  let stdout;
  try {
    stdout = execFileSync(detect, ['scan', '--engine', 'native', '--explain-json', ...options, `${root}fixtures/${file}`], { encoding: 'utf8' });
  } catch (error) {
    stdout = error.stdout; // exit status 1 means "alerts were raised"
  }
  const marker = ',"result":';
  return stdout.trim().split('\n').map((line) => line.slice(line.indexOf(marker) + marker.length, -1));
}

test('the wasm-bindgen build gives byte-identical results to the native engine on every fixture', async () => {
  const bindings = await import(`${root}playground/pkg/vmext_guest.js`);
  bindings.initSync({ module: readFileSync(`${root}playground/pkg/vmext_guest_bg.wasm`) });
  const detector = bindings.Detector.seed();
  let compared = 0;
  for (const fixture of fixtures) {
    const native = nativeResults(fixture.file);
    const web = detector.evaluateText(fixture.text, true);
    assert.equal(web.length, native.length, fixture.file);
    for (const [i, result] of web.entries()) {
      assert.equal(result.resultJson, native[i], fixture.file);
      compared += 1;
    }
  }
  assert.equal(compared, fixtures.reduce((n, f) => n + f.expect.length, 0));
  detector.free();
});

test('profiles and exceptions give byte-identical results in the browser build and natively', async () => {
  const bindings = await import(`${root}playground/pkg/vmext_guest.js`);
  bindings.initSync({ module: readFileSync(`${root}playground/pkg/vmext_guest_bg.wasm`) });
  const exceptionsFile = 'fixtures/exceptions/known-good-automation.json';
  const exceptions = readFileSync(`${root}${exceptionsFile}`, 'utf8');
  assert.equal(bindings.exampleExceptions(), exceptions);
  const verdicts = { alert: 0, suppressed: 0 };
  for (const [profile, withExceptions] of [['hardened', false], ['faithful', true], ['hardened', true]]) {
    const detector = bindings.Detector.configure('seed', '', profile, withExceptions ? exceptions : undefined);
    assert.equal(detector.rule().profile, profile);
    assert.equal(detector.rule().exceptionItems, withExceptions ? 4 : 0);
    const options = ['--profile', profile, ...(withExceptions ? ['--exceptions', `${root}${exceptionsFile}`] : [])];
    for (const fixture of fixtures) {
      const native = nativeResults(fixture.file, options);
      const web = detector.evaluateText(fixture.text, true);
      assert.deepEqual(web.map((r) => r.resultJson), native, `${profile} ${withExceptions} ${fixture.file}`);
      for (const r of web) if (r.verdict in verdicts) verdicts[r.verdict] += 1;
    }
    detector.free();
  }
  assert.ok(verdicts.suppressed >= 18, JSON.stringify(verdicts));
  // Refusals are typed failures.
  assert.throws(() => bindings.Detector.configure('seed', '', 'strict', undefined), (f) => f.kind === 'invalid-profile');
  assert.throws(() => bindings.Detector.configure('seed', '', 'faithful', '[{"entries":[]}]'),
    (f) => f.kind === 'invalid-exceptions' && f.message === 'exceptions: exception item 1: `entries` is empty');
});

test('the hardened profile and exceptions from the page', async () => {
  const page = await openPage();
  const index = fixtures.findIndex((f) => f.file === 'ecs/dsc-extension-name-at-end.json');
  assert.deepEqual(await verdictsAfter(page, () => page.selectOption('#fixture', String(index))), ['none']);
  const faithfulQuery = await page.inputValue('#query');
  assert.deepEqual(await verdictsAfter(page, () => page.selectOption('#profile', 'hardened')), ['alert']);
  const hardenedQuery = await page.inputValue('#query');
  assert.notEqual(hardenedQuery, faithfulQuery);
  assert.match(hardenedQuery, /\*\/EXTENSIONS\/DSC or/);
  assert.match(await page.textContent('#rule-meta'), /profile hardened · 0 exception items/);
  // The example exception list suppresses the known-good alerts of the shipped fixtures.
  await verdictsAfter(page, () => page.selectOption('#fixture', '*'));
  const tuned = await verdictsAfter(page, () => page.click('#example-exceptions'));
  const suppressed = tuned.filter((v) => v === 'suppressed').length;
  assert.ok(suppressed >= 9, `${suppressed} suppressed`);
  assert.match(await page.textContent('#summary'), new RegExp(`${suppressed} suppressed by exceptions`));
  await page.click('#results tbody tr[data-verdict="suppressed"]');
  assert.match(await page.textContent('#detail-hint'), /suppressed by exception item [a-z-]+ \(/);
  // An invalid list is shown next to the list, not in the query.
  await verdictsAfter(page, () => page.fill('#exceptions', '{"entries":[{"field":"a","type":"list","operator":"included","list":{"id":"l","type":"ip"}}]}'));
  assert.equal(await page.isVisible('#exceptions-error'), true);
  assert.match(await page.textContent('#exceptions-error'), /value list/);
  assert.equal(await page.isVisible('#query-error'), false);
  // A link keeps the profile and the exceptions.
  await verdictsAfter(page, () => page.fill('#exceptions', '{"item_id":"quiet","entries":[{"field":"azure.resource.id","operator":"included","type":"exists"}]}'));
  await page.click('#copy-link');
  const again = await browser.newPage();
  await again.goto(page.url());
  await again.waitForSelector('#status[data-state="ready"]');
  assert.equal(await again.inputValue('#profile'), 'hardened');
  assert.equal(await again.inputValue('#query'), hardenedQuery);
  assert.match(await again.inputValue('#exceptions'), /"item_id":"quiet"/);
  await again.close();
  // Back to faithful: the editor returns to the rule's query.
  await verdictsAfter(page, () => page.selectOption('#profile', 'faithful'));
  assert.equal(await page.inputValue('#query'), faithfulQuery);
  await page.context().close();
});

test('the wasm-bindgen build answers hostile input exactly as the native engine', async () => {
  // Written by host-test/tests/hostile.rs, which `cargo xtask test` runs first.
  const dir = `${root}target/hostile`;
  const cases = JSON.parse(readFileSync(`${dir}/manifest.json`, 'utf8'));
  assert.ok(cases.length > 20);
  const bindings = await import(`${root}playground/pkg/vmext_guest.js`);
  bindings.initSync({ module: readFileSync(`${root}playground/pkg/vmext_guest_bg.wasm`) });
  const detector = bindings.Detector.seed();
  for (const c of cases) {
    const answer = detector.evaluateDocument(readFileSync(`${dir}/${c.file}`), true);
    assert.deepEqual(answer, c.expected, c.name);
  }
  detector.free();
});

test('the page shows the host\'s verdict for every fixture', async () => {
  const page = await openPage();
  for (const [i, fixture] of fixtures.entries()) {
    const shown = await verdictsAfter(page, () => page.selectOption('#fixture', String(i)));
    const host = nativeResults(fixture.file).map((r) => JSON.parse(r).verdict);
    assert.deepEqual(shown, host, fixture.file);
    assert.deepEqual(shown, fixture.expect, fixture.file);
  }
  // All fixtures at once, as the page opens: a screenshot for people, written as an artefact.
  const all = await verdictsAfter(page, () => page.selectOption('#fixture', '*'));
  assert.equal(all.length, fixtures.reduce((n, f) => n + f.expect.length, 0));
  await page.click('#results tbody tr[data-verdict="alert"]');
  await page.screenshot({ path: `${output}/playground.png`, fullPage: true });
  assert.deepEqual(page.dialogs, []);
  await page.context().close();
});

test('editing the query changes the verdicts, and a syntax error is shown at its position', async () => {
  const page = await openPage();
  const before = await page.$$eval('#results tbody tr[data-verdict="alert"]', (rows) => rows.length);
  assert.ok(before > 0);
  const query = await page.inputValue('#query');
  const edited = query.replace('principal_type:User', 'principal_type:ServicePrincipal');
  assert.notEqual(edited, query);
  const after = await verdictsAfter(page, () => page.fill('#query', edited));
  assert.notEqual(after.filter((v) => v === 'alert').length, before);
  // A syntax error: shown with its offset, the failing character marked.
  await verdictsAfter(page, () => page.fill('#query', 'event.outcome:(success or'));
  assert.equal(await page.getAttribute('#status', 'data-state'), 'rule-error');
  const message = await page.textContent('#query-error-message');
  assert.match(message, /expected .* at 25$/);
  assert.equal(await page.isVisible('#query-error-context mark'), true);
  // The link keeps the rule: opening it restores the query.
  await page.fill('#query', 'event.outcome:success');
  await page.click('#copy-link');
  const link = page.url();
  const again = await browser.newPage();
  await again.goto(link);
  await again.waitForSelector('#status[data-state="ready"]');
  assert.equal(await again.inputValue('#query'), 'event.outcome:success');
  await again.close();
  await page.context().close();
});

test('a hostile record neither executes nor breaks the layout', async () => {
  const page = await openPage();
  const hostile = '<img src=x onerror="alert(1)"></script><script>window.pwned=1</script>';
  const alerting = JSON.parse(fixtures.find((f) => f.file === 'ecs/custom-script-extension.json').text);
  alerting.event.outcome = 'success';
  alerting.azure.activitylogs.identity.claims_initiated_by_user = { name: hostile };
  alerting.azure.resource.id += `/${hostile}CUSTOMSCRIPTEXTENSION`;
  const text = `${JSON.stringify(alerting)}\n${JSON.stringify({ operationName: hostile, category: hostile })}`;
  const verdicts = await verdictsAfter(page, () => page.fill('#logs', text));
  assert.deepEqual(verdicts, ['alert', 'none']);
  for (const row of await page.$$('#results tbody tr')) {
    await row.click();
  }
  await page.click('#results tbody tr[data-verdict="alert"]');
  assert.match(await page.textContent('#alert-json'), /<img src=x onerror/);
  assert.deepEqual(page.dialogs, []);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.$$eval('img, script:not([src])', (nodes) => nodes.length), 0);
  // The layout holds: the results table stays inside the viewport's width.
  const box = await page.$eval('.table-wrap', (node) => node.getBoundingClientRect().right);
  assert.ok(box <= 1400, `results end at ${box}px`);
  await page.screenshot({ path: `${output}/hostile.png` });
  await page.context().close();
});

test('ten megabytes of pasted NDJSON are evaluated off the main thread', async () => {
  const page = await openPage();
  const lines = fixtures.filter((f) => f.expect.length === 1).map((f) => f.text.trim());
  let big = '';
  let records = 0;
  while (big.length < 10 * 1024 * 1024) {
    big += `${lines.join('\n')}\n`;
    records += lines.length;
  }
  // Start the evaluation, then prove the main thread still runs frames while it is busy.
  const framesWhileBusy = await page.evaluate(async (text) => {
    const logs = document.getElementById('logs');
    const status = document.getElementById('status');
    status.dataset.state = 'waiting';
    logs.value = text;
    logs.dispatchEvent(new Event('input'));
    let frames = 0;
    while (status.dataset.state !== 'ready') {
      await new Promise((resolve) => requestAnimationFrame(resolve));
      if (status.dataset.state === 'busy') frames += 1;
    }
    return frames;
  }, big);
  assert.ok(framesWhileBusy > 0, 'the page drew frames while the worker evaluated');
  const summary = await page.textContent('#summary');
  assert.ok(summary.startsWith(`${records} records`), summary);
  await page.context().close();
});

test('the page never reaches beyond its own server', () => {
  assert.deepEqual(externalRequests, []);
});
