// The WIT component in a second component host, independent of wasmtime: jco transpiles it to
// JavaScript and core WebAssembly for Node, with WASI from @bytecodealliance/preview2-shim.
// Every fixture, in both profiles and with the example exception list, must give the native
// engine's canonical results byte for byte, so the WIT contract is proven by two hosts.
//
// Run by `cargo xtask test` after `jco transpile` has written jco/out/ from the component, with
// target/debug/vmext-detect as the native reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const detect = `${root}target/debug/vmext-detect`;
const { detector } = await import('./out/vmext.js');

const fixtures = ['ecs', 'raw'].flatMap((shape) =>
  readdirSync(`${root}fixtures/${shape}`)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => `fixtures/${shape}/${f}`));
const exceptionsFile = 'fixtures/exceptions/known-good-automation.json';

// The native engine's canonical result texts for a file, as `scan --explain-json` writes them.
function nativeResults(file, options) {
  let stdout;
  try {
    stdout = execFileSync(detect, ['scan', '--engine', 'native', '--explain-json', ...options, `${root}${file}`], { encoding: 'utf8' });
  } catch (error) {
    stdout = error.stdout; // a non-zero status reports alerts or invalid records
  }
  const marker = ',"result":';
  return stdout.trim().split('\n').map((line) => line.slice(line.indexOf(marker) + marker.length, -1));
}

// The component's canonical result texts for a file's one document.
function componentResults(d, file) {
  const result = d.evaluate(readFileSync(`${root}${file}`), true);
  assert.equal(result.tag, 'records', `${file}: ${JSON.stringify(result)}`);
  return result.val.map((r) => r.resultJson);
}

test('the component under jco gives the native engine\'s results on every fixture', () => {
  assert.ok(fixtures.length >= 60);
  const exceptions = readFileSync(`${root}${exceptionsFile}`, 'utf8');
  for (const profile of ['faithful', 'hardened']) {
    for (const withExceptions of [false, true]) {
      const d = detector.Detector.configure({ tag: 'seed' }, profile, withExceptions ? exceptions : undefined);
      const options = ['--profile', profile, ...(withExceptions ? ['--exceptions', `${root}${exceptionsFile}`] : [])];
      for (const file of fixtures) {
        assert.deepEqual(componentResults(d, file), nativeResults(file, options), `${profile} ${withExceptions} ${file}`);
      }
    }
  }
});

test('the seed detector, its rule and its errors as the WIT declares them', () => {
  const d = detector.Detector.seed();
  const rule = d.rule();
  assert.equal(rule.name, 'Azure VM Extension Deployment by User');
  assert.equal(rule.profile, 'faithful');
  // With `explain` the prefilter is skipped, so the text is parsed and its error reported.
  const failed = d.evaluate(new TextEncoder().encode('{"a":'), true);
  assert.equal(failed.tag, 'failed');
  assert.equal(failed.val.error.tag, 'invalid-json');
  assert.throws(() => detector.Detector.fromQuery('a:(b'), (e) => e.payload?.tag === 'query-syntax');
});

test('an envelope evaluated whole and member by member gives the same results', () => {
  const d = detector.Detector.seed();
  const file = 'fixtures/raw/event-hub-envelope-mixed.json';
  const text = readFileSync(`${root}${file}`, 'utf8');
  const whole = componentResults(d, file);
  const members = JSON.parse(text).records.map((r) => new TextEncoder().encode(JSON.stringify(r)));
  const parts = [
    ...d.evaluateMembers(members.slice(0, 2), 0, true),
    ...d.evaluateMembers(members.slice(2), 2, true),
  ].map((r) => r.resultJson);
  assert.deepEqual(parts, whole);
});

test('documents end to end in a chunk give what a batch of them gives, bad ends included', () => {
  const d = detector.Detector.seed();
  const documents = fixtures.map((file) => readFileSync(`${root}${file}`));
  const chunk = new Uint8Array(documents.reduce((n, doc) => n + doc.length, 0));
  const ends = [];
  let at = 0;
  for (const doc of documents) {
    chunk.set(doc, at);
    at += doc.length;
    ends.push(at);
  }
  const summary = (results) => results.map((r) => JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  for (const explain of [false, true]) {
    assert.deepEqual(summary(d.evaluateChunk(chunk, ends, explain)), summary(d.evaluateBatch(documents, explain)));
  }
  // An end beyond the chunk is the chunk's end; an end before the previous one is an empty
  // document, which fails as invalid JSON; neither traps.
  const first = documents[0];
  const odd = d.evaluateChunk(first, [first.length, 0, first.length + 100, 4294967295], true);
  assert.equal(odd.length, 4);
  assert.equal(odd[0].tag, 'records');
  for (const empty of [odd[1], odd[3]]) {
    assert.equal(empty.tag, 'failed');
    assert.equal(empty.val.error.tag, 'invalid-json');
  }
  assert.deepEqual(summary([odd[2]]), summary([odd[0]]));
});

// The prefilter as a host other than vmext-detect would run it, written from the WIT's words
// alone: the document's text in canonical spelling (escapes decoded, except those of `"`, `\`
// and control characters, written `\"`, `\\` and `\u00xx`), searched for each needle, up to
// ASCII case where the needle says so.
function canonical(text) {
  const hex = (n) => `\\u${n.toString(16).padStart(4, '0')}`;
  const spell = (c) => (c === 0x22 ? '\\"' : c === 0x5c ? '\\\\' : c < 0x20 ? hex(c) : String.fromCodePoint(c));
  const simple = { '"': 0x22, '\\': 0x5c, '/': 0x2f, b: 0x08, f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09 };
  return text.replace(/\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))/g,
    (_, high, low, unit, c) => {
      if (high !== undefined) {
        return String.fromCodePoint(0x10000 + ((parseInt(high, 16) - 0xd800) << 10) + (parseInt(low, 16) - 0xdc00));
      }
      return spell(unit !== undefined ? parseInt(unit, 16) : simple[c]);
    });
}

function holds(terms, text) {
  let at = 0;
  const next = () => {
    const term = terms[at++];
    switch (term.tag) {
      case 'anything': return true;
      case 'nothing': return false;
      case 'contains': {
        const { literal, caseInsensitive } = term.val;
        const needle = canonical(JSON.stringify(literal).slice(1, -1));
        const up = (s) => s.replace(/[a-z]/g, (c) => c.toUpperCase());
        return caseInsensitive ? up(text).includes(up(needle)) : text.includes(needle);
      }
      default: {
        // Every operand is read, whatever the verdict, so that `at` moves past all of them.
        const verdicts = Array.from({ length: term.val }, next);
        return term.tag === 'all' ? verdicts.every(Boolean) : verdicts.some(Boolean);
      }
    }
  };
  const verdict = next();
  assert.equal(at, terms.length, 'the formula is one tree');
  return verdict;
}

test('a host that runs the exported prefilter rejects what evaluate rejects', () => {
  const documents = fixtures.map((file) => readFileSync(`${root}${file}`));
  let rejected = 0;
  for (const profile of ['faithful', 'hardened']) {
    const d = detector.Detector.configure({ tag: 'seed' }, profile, undefined);
    const terms = d.prefilter();
    assert.ok(terms.some((t) => t.tag === 'contains'), JSON.stringify(terms));
    for (const [i, doc] of documents.entries()) {
      const inGuest = d.evaluate(doc, false).tag === 'rejected';
      const text = canonical(new TextDecoder().decode(doc));
      assert.equal(!holds(terms, text), inGuest, `${profile} ${fixtures[i]}`);
      rejected += inGuest;
    }
  }
  assert.ok(rejected > 10, `${rejected} rejected`);
});
