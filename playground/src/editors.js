/**
 * The playground's CodeMirror 6 editors: YAML (or JSON, picked from the text) with line
 * marks for findings and errors (a tinted line plus a gutter dot whose tooltip is the
 * message), and the few operations the page needs: read, replace, mark, go to a line.
 */
import { EditorView, basicSetup } from 'codemirror';
import { Annotation, Compartment, EditorState, RangeSet, StateEffect, StateField } from '@codemirror/state';
import { Decoration, GutterMarker, gutter } from '@codemirror/view';
import { yaml } from '@codemirror/lang-yaml';
import { json } from '@codemirror/lang-json';

/** Marks a transaction as the page's own (loading an example or a link), not the user's. */
const programmatic = Annotation.define();

/** Replaces the marks: `{line, severity: "error"|"warning"|"added", message}[]`. */
const setMarks = StateEffect.define();

class Dot extends GutterMarker {
  constructor(severity, title) {
    super();
    this.severity = severity;
    this.title = title;
  }
  eq(other) {
    return other.severity === this.severity && other.title === this.title;
  }
  toDOM() {
    const dot = document.createElement('span');
    dot.className = `cm-apart-dot cm-apart-dot-${this.severity}`;
    dot.title = this.title;
    dot.textContent = this.severity === 'added' ? '+' : '●';
    return dot;
  }
}

/** Mark kinds, the stronger shown when two meet on a line. */
const RANK = { added: 0, warning: 1, error: 2 };

/** Line decorations and gutter dots from marks; one per line, the strongest kind shown. */
function buildMarks(state, marks) {
  const byLine = new Map();
  for (const m of marks) {
    if (!m.line || m.line < 1 || m.line > state.doc.lines) continue;
    const seen = byLine.get(m.line);
    byLine.set(m.line, {
      severity: seen && RANK[seen.severity] > RANK[m.severity] ? seen.severity : m.severity,
      title: seen ? `${seen.title}\n${m.message}` : m.message,
    });
  }
  const lines = [];
  const dots = [];
  for (const [n, m] of [...byLine].sort((a, b) => a[0] - b[0])) {
    const from = state.doc.line(n).from;
    lines.push(Decoration.line({ class: `cm-apart-line-${m.severity}`, attributes: { title: m.title } }).range(from));
    dots.push(new Dot(m.severity, m.title).range(from));
  }
  return { lines: Decoration.set(lines), dots: RangeSet.of(dots) };
}

const marksField = StateField.define({
  create: () => ({ lines: Decoration.none, dots: RangeSet.empty }),
  update(value, tr) {
    for (const e of tr.effects) if (e.is(setMarks)) return buildMarks(tr.state, e.value);
    // Marks follow the text the user edits until the next run replaces them.
    return tr.docChanged ? { lines: value.lines.map(tr.changes), dots: value.dots.map(tr.changes) } : value;
  },
  provide: (f) => EditorView.decorations.from(f, (v) => v.lines),
});

const marksGutter = gutter({
  class: 'cm-apart-gutter',
  markers: (view) => view.state.field(marksField).dots,
  initialSpacer: () => new Dot('error', ''),
});

/** JSON mode for text that opens like JSON (a `kubectl -o json` snapshot), else YAML. */
const looksJson = (text) => /^\s*[[{]/.test(text);

/**
 * An editor in `parent`. `label` names it for screen readers; `onChange(view)` runs after
 * the user edits it; `language` is "yaml" or "auto" (JSON or YAML by the text).
 */
export function createEditor(parent, { label, onChange = () => {}, language = 'yaml', readOnly = false }) {
  const lang = new Compartment();
  let isJson = false;
  const extensions = [
    basicSetup,
    lang.of(yaml()),
    marksField,
    marksGutter,
    EditorView.contentAttributes.of({ 'aria-label': label }),
    EditorView.updateListener.of((u) => {
      if (!u.docChanged) return;
      if (language === 'auto' && looksJson(u.state.doc.sliceString(0, 200)) !== isJson) {
        isJson = !isJson;
        // Reconfiguring inside an update listener is not allowed: defer it.
        queueMicrotask(() => u.view.dispatch({ effects: lang.reconfigure(isJson ? json() : yaml()) }));
      }
      if (!u.transactions.some((t) => t.annotation(programmatic))) onChange(u.view);
    }),
  ];
  if (readOnly) extensions.push(EditorState.readOnly.of(true));
  return new EditorView({ parent, state: EditorState.create({ doc: '', extensions }) });
}

export const getText = (view) => view.state.doc.toString();

/** Replaces the whole text (as the page, so `onChange` does not fire) and clears the marks. */
export function setText(view, text) {
  if (getText(view) === text) return;
  view.dispatch({
    changes: { from: 0, to: view.state.doc.length, insert: text },
    annotations: programmatic.of(true),
    effects: setMarks.of([]),
  });
}

export function mark(view, marks) {
  view.dispatch({ effects: setMarks.of(marks) });
}

/** Scrolls `line` (1-based) to the middle without moving the cursor or the focus. */
export function reveal(view, line) {
  const pos = view.state.doc.line(Math.min(Math.max(line, 1), view.state.doc.lines)).from;
  view.dispatch({ effects: EditorView.scrollIntoView(pos, { y: 'center' }) });
}

/** Puts the cursor at `line`:`column` (1-based), scrolls it to the middle and focuses. */
export function goTo(view, line, column = 1) {
  const l = view.state.doc.line(Math.min(Math.max(line, 1), view.state.doc.lines));
  const pos = Math.min(l.from + Math.max(column - 1, 0), l.to);
  view.dispatch({ selection: { anchor: pos }, effects: EditorView.scrollIntoView(pos, { y: 'center' }) });
  view.focus();
}
