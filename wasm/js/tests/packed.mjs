// The package as `npm pack` makes it, installed in a fresh folder (`cargo xtask ci`), used as
// its README's three lines say: imported by name, it checks the seed case.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check } from "apart-policy";

const root = process.env.APART_ROOT;
const policyYaml = readFileSync(join(root, "examples/seed/policy.yaml"), "utf8");
const manifestsYaml = readFileSync(join(root, "examples/rendered/spire-server-statefulset.yaml"), "utf8");

const report = check(policyYaml, manifestsYaml);
for (const f of report.findings) console.log(`${f.file}:${f.line} ${f.code}: ${f.message}`);

assert.ok(
  report.findings.some((f) => f.code === "namespace-blind" && f.file === "manifests.yaml"),
  "the installed package finds the seed's namespace-blind term",
);
