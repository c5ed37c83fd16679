/**
 * The apart playground page: four editors (policies, manifests, cluster snapshot, pod),
 * three views over apart's web build (Check with Fix, Simulate, Audit), preloaded
 * examples and share links. Every run is synchronous in the engine, so a run is simply
 * "read the editors, call apart, draw"; it happens shortly after the user stops typing.
 */
import init, { audit, check, fix, simulate, validatePolicies, version } from 'apart';
import examples from 'apart:examples';
import { createEditor, getText, goTo, mark, reveal, setText } from './editors.js';
import { decodeState, encodeState } from './share.js';
import { h, renderAudit, renderDiff, renderFindings, renderSimulation, summaryText } from './render.js';

const $ = (id) => document.getElementById(id);
const VIEWS = ['check', 'simulate', 'audit'];
const TEXTS = ['policy', 'manifests', 'cluster', 'pod'];
const DEBOUNCE_MS = 300;

// The name each text goes by in findings and errors, so a `file:line` message finds its editor.
const NAMES = { policy: 'policy.yaml', manifests: 'manifests.yaml', cluster: 'cluster.yaml', pod: 'pod.yaml' };
const FILES = Object.fromEntries(Object.entries(NAMES).map(([k, v]) => [v, k]));
const CHECK_OPTIONS = { file: NAMES.manifests, policyFile: NAMES.policy };
const TITLES = { policy: 'Policies', manifests: 'Manifests', cluster: 'Cluster snapshot', pod: 'Pod to place' };

/** What is not in the editors: the view, whether the fix is open, the example picked. */
const ui = { view: 'check', fix: false, example: '' };
const editors = {};
let fixedEditor;
let ready = false;
let timer = 0;
/** Set when a state is loaded: the next check scrolls its editors to the first findings. */
let revealFindings = false;

const texts = () => Object.fromEntries(TEXTS.map((k) => [k, getText(editors[k])]));

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(run, DEBOUNCE_MS);
}

/** Shows an error (an Error from apart, or from the page), marking its line when it has one. */
function showError(error, marks) {
  const box = $('error');
  document.querySelectorAll('.results').forEach((r) => r.classList.toggle('stale', !!error));
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  const at = /^([^\s:]+):(\d+)(?::(\d+))?:/.exec(message);
  const editor = at && FILES[at[1]];
  const children = [h('strong', {}, 'Error: '), h('span', { class: 'error-message' }, message)];
  if (editor && marks) {
    const line = Number(at[2]);
    marks[editor].push({ line, severity: 'error', message });
    children.push(
      ' ',
      h(
        'button',
        { type: 'button', class: 'link', onclick: () => goTo(editors[editor], line, Number(at[3] ?? 1)) },
        `Go to line ${line} of ${TITLES[editor]}`,
      ),
    );
  }
  box.replaceChildren(...children);
  box.hidden = false;
}

/** Reads the editors, runs the current view through apart and draws the result. */
function run() {
  clearTimeout(timer);
  if (!ready) return;
  const t = texts();
  const marks = Object.fromEntries(TEXTS.map((k) => [k, []]));
  const started = performance.now();
  try {
    // Policies first: their own error, with its line, reads better than a run's.
    const valid = validatePolicies(t.policy, { policyFile: NAMES.policy });
    $('policy-names').textContent = valid.valid ? valid.policies.join(', ') : 'invalid';
    if (!valid.valid) {
      const e = valid.errors[0] ?? { message: 'policy.yaml: invalid policies' };
      if (e.line) marks.policy.push({ line: e.line, severity: 'error', message: e.message });
      throw new Error(e.message);
    }
    if (ui.view === 'check') runCheck(t, marks);
    else if (ui.view === 'simulate') runSimulate(t);
    else runAudit(t);
    showError(null);
    $('timing').textContent = `ran in ${Math.max(1, Math.round(performance.now() - started))} ms`;
  } catch (e) {
    showError(e, marks);
  }
  for (const k of TEXTS) mark(editors[k], marks[k]);
}

function runCheck(t, marks) {
  const result = ui.fix ? fix(t.policy, t.manifests, CHECK_OPTIONS) : check(t.policy, t.manifests, CHECK_OPTIONS);
  const where = (f) => (f.line && ['policy', 'manifests'].includes(FILES[f.file]) ? FILES[f.file] : null);
  for (const f of result.findings) {
    const editor = where(f);
    if (editor) marks[editor].push({ line: f.line, severity: f.severity, message: `${f.code}: ${f.message}` });
  }
  renderFindings($('findings'), result.findings, where, (f) => goTo(editors[where(f)], f.line, f.column));
  if (revealFindings) {
    revealFindings = false;
    for (const k of ['manifests', 'policy']) if (marks[k].length) reveal(editors[k], marks[k][0].line);
  }
  $('summary').textContent = summaryText(result.summary);
  $('no-findings').hidden = result.findings.length > 0;
  $('fix-panel').hidden = !ui.fix;
  $('fix').setAttribute('aria-expanded', String(ui.fix));
  if (!ui.fix) return;
  const { added, removed } = diffLines(result.diff);
  $('fix-summary').textContent = result.diff
    ? `${added.length} line${added.length === 1 ? '' : 's'} added, ${removed} removed`
    : 'Nothing to fix: the manifests need no change.';
  renderDiff($('diff'), result.diff);
  setText(fixedEditor, result.output);
  // The fixed text marks what the fix added and opens at the first change.
  mark(
    fixedEditor,
    added.map((line) => ({ line, severity: 'added', message: 'added by the fix' })),
  );
  if (added.length) reveal(fixedEditor, added[0]);
  $('apply').disabled = !result.diff;
}

/** A unified diff's added lines (their numbers in the new text) and its count of removed ones. */
function diffLines(diff) {
  const added = [];
  let removed = 0;
  let line = 0;
  for (const l of diff.split('\n')) {
    const hunk = /^@@ -\d+(?:,\d+)? \+(\d+)/.exec(l);
    if (hunk) line = Number(hunk[1]);
    else if (l.startsWith('+++') || l.startsWith('---')) continue;
    else if (l.startsWith('+')) added.push(line++);
    else if (l.startsWith('-')) removed++;
    else if (l.startsWith(' ')) line++;
  }
  return { added, removed };
}

function runSimulate(t) {
  const box = $('simulation');
  if (!t.cluster.trim() || !t.pod.trim()) {
    box.replaceChildren(
      h(
        'p',
        { class: 'hint' },
        'Paste a cluster snapshot and a pod (or a Deployment, StatefulSet …) to see where kube-scheduler would place it.',
      ),
    );
    return;
  }
  // The policies, when there are any, judge the node the scheduler picks.
  const options = { clusterFile: NAMES.cluster, podFile: NAMES.pod, policyFile: NAMES.policy };
  if (t.policy.trim()) options.policies = t.policy;
  renderSimulation(box, simulate(t.cluster, t.pod, options));
}

function runAudit(t) {
  const box = $('audit');
  if (!t.cluster.trim()) {
    box.replaceChildren(
      h(
        'p',
        { class: 'hint' },
        'Paste a cluster snapshot (kubectl get nodes,pods -A -o json) to see which subjects already run beside their peers.',
      ),
    );
    return;
  }
  renderAudit(box, audit(t.policy, t.cluster, { clusterFile: NAMES.cluster, policyFile: NAMES.policy }));
}

function setView(view) {
  ui.view = VIEWS.includes(view) ? view : 'check';
  $('main').dataset.view = ui.view;
  for (const tab of document.querySelectorAll('[role=tab]')) {
    const on = tab.dataset.view === ui.view;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  for (const el of document.querySelectorAll('[data-views]'))
    el.hidden = !el.dataset.views.split(' ').includes(ui.view);
  run();
}

/** Loads a state (an example or a share link): every editor, the view, the fix. */
function load(state) {
  ui.fix = !!state.fix;
  ui.example = examples.some((e) => e.id === state.example) ? state.example : '';
  $('example').value = ui.example;
  const example = examples.find((e) => e.id === ui.example);
  $('sources').textContent = example && !state.shared ? `Example files: ${example.sources.join(', ')}.` : '';
  for (const k of TEXTS) setText(editors[k], state[k] ?? '');
  revealFindings = true;
  setView(state.view);
}

async function share() {
  const status = $('share-status');
  const link = $('share-link');
  try {
    const hash = await encodeState({ ...ui, ...texts() });
    history.replaceState(null, '', hash);
    link.value = location.href;
    link.hidden = false;
    link.select();
    try {
      await navigator.clipboard.writeText(link.value);
      status.textContent = 'Link copied.';
    } catch {
      status.textContent = 'Copy the link.';
    }
  } catch (e) {
    status.textContent = '';
    showError(e);
  }
}

/** A link pasted into this tab: load the state it holds. */
async function onHashChange() {
  try {
    const state = await decodeState(location.hash);
    if (state) load({ ...state, shared: true });
  } catch (e) {
    showError(e);
  }
}

function wire() {
  const onChange = () => {
    $('share-link').hidden = true;
    $('share-status').textContent = '';
    schedule();
  };
  const make = (key, options = {}) => createEditor($(`${key}-editor`), { label: TITLES[key], onChange, ...options });
  editors.policy = make('policy');
  editors.manifests = make('manifests');
  editors.cluster = make('cluster', { language: 'auto' });
  editors.pod = make('pod', { language: 'auto' });
  fixedEditor = createEditor($('fixed-editor'), { label: 'Fixed manifests', readOnly: true });

  const select = $('example');
  select.append(
    h('option', { value: '' }, '— your own —'),
    ...examples.map((e) => h('option', { value: e.id }, e.title)),
  );
  select.addEventListener('change', () => {
    const example = examples.find((e) => e.id === select.value);
    if (example) load({ ...example, example: example.id, fix: false });
  });

  const tabs = [...document.querySelectorAll('[role=tab]')];
  for (const tab of tabs) {
    tab.addEventListener('click', () => setView(tab.dataset.view));
    // Arrow keys move between tabs, as in any tab list.
    tab.addEventListener('keydown', (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      setView(next.dataset.view);
    });
  }
  $('fix').addEventListener('click', () => {
    ui.fix = true;
    run();
    $('fix-panel').scrollIntoView({ block: 'nearest' });
  });
  $('close-fix').addEventListener('click', () => {
    ui.fix = false;
    run();
  });
  $('apply').addEventListener('click', () => {
    setText(editors.manifests, getText(fixedEditor));
    run();
  });
  $('share').addEventListener('click', share);
  window.addEventListener('hashchange', onHashChange);
}

async function start() {
  wire();
  try {
    await init({ module_or_path: new URL('./apart_bg.wasm', import.meta.url) });
  } catch (e) {
    showError(new Error(`apart's WebAssembly module did not load: ${e.message}`));
    return;
  }
  ready = true;
  $('version').textContent = `v${version()}`;
  // A share link's state, else the first example; a damaged link says so over the example.
  let state = null;
  let linkError = null;
  try {
    state = await decodeState(location.hash);
  } catch (e) {
    linkError = e;
  }
  load(state ? { ...state, shared: true } : { ...examples[0], example: examples[0].id });
  if (linkError) showError(linkError);
  // For the end-to-end test (and the curious): the state a share link would hold.
  window.apartPlayground = { state: () => ({ ...ui, ...texts() }), fixed: () => getText(fixedEditor) };
  document.body.dataset.ready = 'true';
}

// Nothing escapes as an uncaught error: the user sees it instead.
window.addEventListener('unhandledrejection', (e) => {
  e.preventDefault();
  showError(e.reason);
});
start().catch(showError);
