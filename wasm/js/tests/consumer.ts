// A small TypeScript consumer of the package's generated declarations, checked by
// `tsc --noEmit` (`cargo xtask ci`): the functions, their options and the shapes they
// return type-check as a user would write them.

import init, {
  audit,
  check,
  fix,
  simulate,
  validatePolicies,
  version,
  type ApartError,
  type AuditResult,
  type CheckReport,
  type Finding,
  type FixResult,
  type PolicyValidation,
} from "apart-policy/web";

export async function lint(policy: string, manifests: string): Promise<string[]> {
  await init();
  const report: CheckReport = check(policy, manifests, { file: "chart.yaml" });
  const lines = report.findings.map(
    (f: Finding) => `${f.file}:${f.line ?? 0} ${f.severity}[${f.code}] ${f.message}`,
  );
  const repaired: FixResult = fix(policy, [{ name: "a.yaml", text: manifests }]);
  lines.push(repaired.diff, repaired.files[0]?.output ?? "", String(repaired.summary.mutated));
  const picture: AuditResult = audit(policy, "{}", { clusterFile: "cluster.json" });
  lines.push(picture.svg);
  const checked: PolicyValidation = validatePolicies(policy);
  lines.push(...checked.errors.map((e) => `${e.line ?? "?"}: ${e.message}`));
  const placed = simulate("{}", manifests, { hardPodAffinityWeight: 1, policies: policy });
  lines.push(JSON.stringify(placed), version());
  try {
    check(policy, "kind: [");
  } catch (e) {
    const where = e as ApartError;
    lines.push(`${where.file ?? "?"}:${where.line ?? 0}:${where.column ?? 0}: ${where.message}`);
  }
  return lines;
}
