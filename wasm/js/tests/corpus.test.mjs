// The behaviour corpus (`tests/cases/`) through the JS build under Node's test runner: every
// case's findings (code, object, file, line, column, path, message, fix), its exit, its
// repaired files and its input errors must be what the native engine and the waPC module
// produced (the goldens `host-tests/tests/cases.rs` checks both against); the simulate and
// audit cases likewise against `expected-simulate.json` and `expected-audit.json`.
//
// The package is taken from `APART_JS_DIR` (default `target/js`), built by `cargo xtask
// build`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const pkg = process.env.APART_JS_DIR ?? join(root, "target", "js");
const apart = createRequire(import.meta.url)(join(pkg, "node", "apart.js"));
const corpus = join(root, "tests", "cases");

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A case's files starting with `prefix` (YAML or JSON), sorted as the Rust runner sorts
 * them; `text` is null for a file that is not UTF-8 (JS strings are text: decoding bytes
 * is the caller's, as it is the CLI's file layer's). */
function files(dir, prefix) {
  return readdirSync(dir)
    .filter((n) => n.startsWith(prefix) && /\.(ya?ml|json)$/.test(n))
    .sort()
    .map((name) => {
      let text = null;
      try {
        text = utf8.decode(readFileSync(join(dir, name)));
      } catch {}
      return { name, text };
    });
}

const cases = (pred) =>
  readdirSync(corpus)
    .filter((n) => statSync(join(corpus, n)).isDirectory() && pred(n))
    .sort()
    .map((name) => ({ name, dir: join(corpus, name) }));

/** What `cases.rs` writes for an error: the message and exit 2. */
function refused(run) {
  try {
    return { ok: run() };
  } catch (e) {
    assert.ok(e instanceof Error, `a thrown ${typeof e}, not an Error`);
    return { error: e.message };
  }
}

const policyCases = cases((n) => files(join(corpus, n), "input").length > 0);

test("the policy corpus agrees with the native engine, case by case", () => {
  assert.ok(policyCases.length >= 100, `only ${policyCases.length} cases`);
  for (const { name, dir } of policyCases) {
    const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8"));
    // Named by their paths, then made relative to the case folder, as `cases.rs` does (a
    // message may name the folder too, e.g. in the command it suggests).
    const full = (f) => ({ name: join(dir, f.name), text: f.text });
    const relative = (text) => text.replaceAll(`${dir}/`, "");
    const policies = files(dir, "policy").map(full);
    const inputs = files(dir, "input").map(full);
    if (inputs.some((i) => i.text === null)) {
      // The CLI refuses the bytes before any text exists; a JS caller has decoded them.
      assert.match(expected.error, /not UTF-8 text/, `${name}: a file that is not UTF-8`);
      continue;
    }
    const got = refused(() => apart.fix(policies, inputs));
    if (expected.error !== undefined) {
      assert.deepEqual(
        { error: got.error && relative(got.error) },
        { error: expected.error },
        `${name}: the input error`,
      );
      continue;
    }
    assert.ok(got.ok, `${name}: refused: ${got.error}`);
    const { summary, files: fixed } = got.ok;
    const findings = got.ok.findings.map((f) => ({ ...f, file: relative(f.file) }));
    assert.deepEqual(findings, expected.findings, `${name}: findings`);
    assert.equal(summary.errors > 0 ? 1 : 0, expected.exit, `${name}: exit`);
    assert.equal(summary.mutated, expected.mutated.length, `${name}: objects repaired`);
    // `check` reports exactly what `fix` reports.
    assert.deepEqual(apart.check(policies, inputs).findings, got.ok.findings, `${name}: check`);
    for (const f of fixed) {
      const golden = join(dir, "fixed", relative(f.name));
      if (f.output === inputs.find((i) => i.name === f.name).text) {
        assert.ok(!existsSync(golden), `${name}: ${f.name} has a golden fix but was not changed`);
        continue;
      }
      assert.equal(f.output, readFileSync(golden, "utf8"), `${name}: fixed/${f.name}`);
      // A second fix changes nothing.
      const again = apart.fix(policies, [{ name: f.name, text: f.output }]);
      assert.equal(again.diff, "", `${name}: ${f.name} is repaired again`);
    }
  }
});

test("the simulate corpus agrees with the CLI's JSON", () => {
  const dirs = cases((n) => n.startsWith("simulate-"));
  assert.ok(dirs.length >= 50, `only ${dirs.length} simulate cases`);
  for (const { name, dir } of dirs) {
    const expected = JSON.parse(readFileSync(join(dir, "expected-simulate.json"), "utf8"));
    const args = existsSync(join(dir, "args.json"))
      ? JSON.parse(readFileSync(join(dir, "args.json"), "utf8"))
      : {};
    const [cluster] = [...files(dir, "cluster")];
    const [pod] = files(dir, "pod");
    // Named as the CLI's run from the repository root names them.
    const named = (f) => ({ name: `tests/cases/${name}/${f.name}`, text: f.text });
    const policies = files(dir, "policy").map(named);
    const got = refused(() =>
      apart.simulate(cluster.text, pod.text, {
        ...args,
        clusterFile: named(cluster).name,
        podFile: named(pod).name,
        ...(policies.length ? { policies } : {}),
      }),
    );
    if (expected.error !== undefined) {
      assert.deepEqual(got, { error: expected.error }, `${name}: the input error`);
    } else {
      assert.deepEqual(got, { ok: expected }, `${name}: the decision`);
    }
  }
});

test("the audit corpus agrees with the CLI's JSON, and draws its picture", () => {
  const dirs = cases((n) => n.startsWith("audit-"));
  assert.ok(dirs.length >= 5, `only ${dirs.length} audit cases`);
  for (const { name, dir } of dirs) {
    const expected = JSON.parse(readFileSync(join(dir, "expected-audit.json"), "utf8"));
    const [cluster] = files(dir, "cluster");
    const got = refused(() =>
      apart.audit(files(dir, "policy"), cluster.text, { clusterFile: cluster.name }),
    );
    if (expected.error !== undefined) {
      assert.deepEqual(got, { error: expected.error }, `${name}: the input error`);
      continue;
    }
    assert.deepEqual(got.ok?.report, expected, `${name}: the report`);
    assert.match(got.ok.svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*><style>/);
    assert.match(got.ok.svg, /<\/svg>$/);
  }
});

test("bad options and bad texts are errors, not panics", () => {
  const policy = readFileSync(join(root, "examples", "seed", "policy.yaml"), "utf8");
  assert.throws(() => apart.check(policy, "kind: [", {}), /^Error: manifests\.yaml:\d+:\d+: /);
  // A thrown error also says where, for an editor to mark.
  assert.throws(
    () => apart.check(policy, "kind: Pod\nmetadata: [\n", { file: "pod.yaml" }),
    (e) => e.file === "pod.yaml" && Number.isInteger(e.line) && Number.isInteger(e.column),
  );
  assert.throws(
    () => apart.check("kind: DecorrelationPolicy\napiVersion: apart.dev/v1alpha1\nmetadata: {name: x}\nspec: {}\n", ""),
    (e) => e.file === "policy.yaml" && e.line === 4 && e.column === undefined,
  );
  assert.throws(() => apart.check(policy, "", { fille: "x" }), /unknown field `fille`/);
  assert.throws(() => apart.check(42, ""), /policies: expected a string or an array/);
  assert.throws(() => apart.simulate("{}", "{}", { hardPodAffinityWeight: 101 }), /0 to 100/);
  const invalid = apart.validatePolicies("apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: x}\nspec: {}\n");
  assert.equal(invalid.valid, false);
  assert.deepEqual(invalid.errors[0], {
    message: "policy.yaml:4: $.spec: missing field `subject`",
    line: 4,
    column: null,
    field: "$.spec",
  });
  assert.deepEqual(apart.validatePolicies(policy), {
    valid: true,
    policies: ["identity-apart-from-gitops"],
    errors: [],
  });
});
