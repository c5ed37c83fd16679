/**
 * The results panels, built as DOM nodes with text content only (never HTML from the
 * engine's output): findings, the fix's diff, the scheduling simulation and the audit.
 * The audit picture is apart's SVG, shown through an <img> from a Blob URL so that even a
 * hostile snapshot's names inside it could not run script in the page.
 */

/** `h('li', {class: 'x'}, child, 'text', ...)`: an element; strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...present(children));
  return el;
}

/** Children without the absent ones (`cond ? node : null`). */
const present = (children) => children.flat().filter((c) => c !== null && c !== undefined && c !== false);

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** "HelmRelease kube-system/cilium" */
export function objectName(o) {
  const name = [o.namespace, o.name].filter(Boolean).join('/');
  return name ? `${o.kind} ${name}` : o.kind;
}

export function summaryText(s) {
  const parts = [
    plural(s.errors, 'error'),
    plural(s.warnings, 'warning'),
    plural(s.objects, 'object'),
    plural(s.policies, 'policy', 'policies'),
  ];
  if (s.mutated) parts.push(`${s.mutated} fixable`);
  return parts.join(' · ');
}

/**
 * The findings list. `where(finding)` names the editor a finding's line is in
 * ("manifests" or "policy", null when it has no line); `onSelect(finding)` runs on a click.
 */
export function renderFindings(list, findings, where, onSelect) {
  list.replaceChildren(
    ...findings.map((f) => {
      const editor = where(f);
      const loc = f.line ? `${editor === 'policy' ? 'policy ' : ''}${f.line}${f.column ? `:${f.column}` : ''}` : '—';
      const body = [
        h('span', { class: 'loc', title: editor ? `line ${f.line} of the ${editor}` : 'no line' }, loc),
        h('span', { class: `sev sev-${f.severity}` }, f.severity),
        h('code', { class: 'code' }, f.code),
        h('span', { class: 'obj' }, objectName(f.object)),
        h('span', { class: 'pol' }, `policy ${f.policy}`),
        h('span', { class: 'msg' }, f.message),
        h('code', { class: 'path' }, f.path),
      ];
      const data = { code: f.code, line: f.line ?? '', severity: f.severity, editor: editor ?? '' };
      // A finding with a line is a button that takes the cursor there.
      const item = editor
        ? h(
            'button',
            { type: 'button', class: `finding sev-${f.severity}`, dataset: data, onclick: () => onSelect(f) },
            body,
          )
        : h('div', { class: `finding sev-${f.severity}`, dataset: data }, body);
      return h('li', {}, item);
    }),
  );
}

/** A unified diff, one line per element, coloured by its first character. */
export function renderDiff(pre, diff) {
  pre.replaceChildren(
    ...diff
      .split('\n')
      .filter((line, i, all) => line || i < all.length - 1)
      .map((line) => {
        let cls = 'ctx';
        if (line.startsWith('+++') || line.startsWith('---')) cls = 'file';
        else if (line.startsWith('@@')) cls = 'hunk';
        else if (line.startsWith('+')) cls = 'add';
        else if (line.startsWith('-')) cls = 'del';
        return h('span', { class: `diff-${cls}` }, `${line}\n`);
      }),
  );
}

const pods = (list) => list.map((p) => `${p.namespace}/${p.name}`).join(', ');

function table(head, rows) {
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        head.map((c) => h('th', { scope: 'col' }, c)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((r) =>
        h(
          'tr',
          { class: r.class },
          r.cells.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', {}, c))),
        ),
      ),
    ),
  );
}

function rawJson(value) {
  return h('details', { class: 'raw' }, h('summary', {}, 'JSON'), h('pre', {}, JSON.stringify(value, null, 2)));
}

/** `apart simulate --output json`: the chosen node, every node's fate, the policies' verdicts. */
export function renderSimulation(box, sim) {
  const nodes = [...new Set([...(sim.feasible_nodes ?? []), ...Object.keys(sim.infeasible ?? {})])];
  const score = (key, n) => (sim[key] && n in sim[key] ? String(sim[key][n]) : '');
  const hasSpread = !!sim.spread_scores;
  const head = ['Node', 'Score', 'Inter-pod raw', ...(hasSpread ? ['Spread', 'Combined'] : []), 'Filtered out because'];
  const rows = nodes.map((n) => {
    const why = sim.infeasible?.[n];
    return {
      class: n === sim.chosen_node ? 'chosen' : why ? 'infeasible' : undefined,
      cells: [
        n === sim.chosen_node ? `${n} ✓` : n,
        score('scores', n),
        score('raw_scores', n),
        ...(hasSpread ? [score('spread_scores', n), score('combined_scores', n)] : []),
        why ? `${why.reason}: ${why.message}` : '',
      ],
    };
  });
  box.replaceChildren(
    ...present([
      h(
        'p',
        { class: 'verdict' },
        sim.chosen_node
          ? ['kube-scheduler would place the pod on ', h('strong', { id: 'chosen-node' }, sim.chosen_node)]
          : h('strong', {}, 'No node fits the pod.'),
      ),
      ...(sim.warnings ?? []).map((w) => h('p', { class: 'warn', role: 'note' }, w)),
      (sim.policies ?? []).length
        ? h(
            'ul',
            { class: 'verdicts' },
            sim.policies.map((p) =>
              h(
                'li',
                { class: p.apart ? 'ok' : 'bad' },
                h('strong', {}, p.policy),
                p.apart
                  ? ` kept apart on ${p.topology_key}=${p.domain}`
                  : ` NOT apart on ${p.topology_key}=${p.domain}: beside ${p.peers.join(', ')}`,
              ),
            ),
          )
        : null,
      nodes.length ? table(head, rows) : h('p', {}, 'The snapshot has no nodes.'),
      rawJson(sim),
    ]),
  );
}

/** Blob URL of the last audit picture, revoked when the next replaces it. */
let svgUrl = null;

/** `audit()`: the picture, the violations, the blast radius (worst first), unlabelled nodes. */
export function renderAudit(box, { report, svg }) {
  if (svgUrl) URL.revokeObjectURL(svgUrl);
  svgUrl = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  const s = report.summary;
  const violations = report.violations ?? [];
  box.replaceChildren(
    ...present([
      h(
        'p',
        { class: `verdict ${s.violations ? 'bad' : 'ok'}` },
        h('strong', {}, s.violations ? 'VIOLATED' : 'OK'),
        ` ${plural(s.policies, 'policy', 'policies')}, ${plural(s.nodes, 'node')}, ${plural(s.placedPods, 'placed pod')} (${s.protectedPods} protected), ${plural(s.violations, 'violation')}`,
      ),
      h('img', {
        id: 'audit-picture',
        src: svgUrl,
        alt: 'Failure domains with the subject and peer pods placed on them',
      }),
      violations.length ? h('h3', {}, 'Violations: subjects and peers share a failure domain') : null,
      h(
        'ul',
        { class: 'violations' },
        violations.map((v) =>
          h(
            'li',
            {},
            h('strong', {}, v.policy),
            ` (${v.strength}) on ${v.topologyKey}=${v.domain}`,
            h('span', { class: 'pods' }, `subjects ${pods(v.subjects)}`),
            h('span', { class: 'pods' }, `peers ${pods(v.peers)} (${v.peersSelect})`),
            h('span', { class: 'hint' }, `If ${v.domain} fails, both go down together.`),
          ),
        ),
      ),
      (report.blastRadius ?? []).length ? h('h3', {}, 'Blast radius, worst first') : null,
      h(
        'ol',
        { class: 'blast' },
        (report.blastRadius ?? []).map((d) =>
          h(
            'li',
            {},
            h('strong', {}, `${d.topologyKey}=${d.domain}`),
            d.policies.length ? ` violates ${d.policies.join(', ')}` : '',
            d.groups.map((g) =>
              h(
                'span',
                { class: 'pods' },
                `${g.policy} ${g.role === 'subject' ? 'subject' : `apartFrom[${g.peerGroup}]`}, ${g.pods.length} of ${plural(g.total, 'pod')}${g.whole ? ' (the whole group)' : ''}: ${pods(g.pods)}`,
              ),
            ),
          ),
        ),
      ),
      (report.unlabelled ?? []).length ? h('h3', {}, 'Nodes without the topology label') : null,
      (report.unlabelled ?? []).length ? h('pre', {}, JSON.stringify(report.unlabelled, null, 2)) : null,
      rawJson(report),
    ]),
  );
}
