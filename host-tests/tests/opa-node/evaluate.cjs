// Evaluates apart's OPA-ABI module with the official OPA SDK, `@open-policy-agent/opa-wasm`,
// as a Node host would deploy it: the test drives this script (host-tests/tests/opa.rs).
//
// Usage: node evaluate.cjs SDK_DIR MODULE.wasm < inputs.jsonl > results.jsonl
// SDK_DIR is the package's folder (`cargo xtask setup` installs it under target/opa-node).
// Each input line is one Gatekeeper-mode input; each output line is the SDK's result set for
// it, or {"error": "..."} when the SDK threw.
"use strict";

const fs = require("node:fs");

async function main() {
  const [sdkDir, modulePath] = process.argv.slice(2);
  const { loadPolicy } = require(sdkDir);
  const policy = await loadPolicy(fs.readFileSync(modulePath));
  // What the SDK read from the module, for the test to check.
  process.stdout.write(
    JSON.stringify({ abi: [1, policy.minorVersion], entrypoints: policy.entrypoints }) + "\n",
  );
  const lines = fs.readFileSync(0, "utf8").split("\n").filter((l) => l.length > 0);
  for (const line of lines) {
    let out;
    try {
      out = policy.evaluate(JSON.parse(line), "apart/violation");
    } catch (e) {
      out = { error: String(e) };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  }
}

main().catch((e) => {
  process.stderr.write(`${e}\n`);
  process.exit(1);
});
