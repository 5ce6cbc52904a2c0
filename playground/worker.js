// Runs the engine off the main thread, so that pasting megabytes of logs never freezes the page.
import init, { Detector, seedRuleToml, hardenedQuery, exampleExceptions } from './pkg/vmext_guest.js';

let detector = null;
const ready = init().then(() => postMessage({
  type: 'ready',
  seedToml: seedRuleToml(),
  hardenedQuery: hardenedQuery(),
  exampleExceptions: exampleExceptions(),
}));

onmessage = async (event) => {
  await ready;
  const message = event.data;
  if (message.type === 'rule') {
    try {
      // source: 'seed' | 'toml' | 'query'; profile: 'faithful' | 'hardened'; exceptions: text or undefined.
      const next = Detector.configure(message.source, message.text, message.profile, message.exceptions);
      if (detector) detector.free();
      detector = next;
      postMessage({ type: 'rule', id: message.id, ok: true, rule: detector.rule() });
    } catch (failure) {
      // A RuleFailure object (kind, message, offset), or an unexpected JavaScript error.
      const plain = failure instanceof Error ? { kind: 'error', message: String(failure) } : failure;
      postMessage({ type: 'rule', id: message.id, ok: false, failure: plain });
    }
  } else if (message.type === 'evaluate' && detector) {
    const started = performance.now();
    const results = detector.evaluateText(message.text, true);
    postMessage({ type: 'results', id: message.id, results, millis: performance.now() - started });
  }
};
