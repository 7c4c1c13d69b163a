#!/usr/bin/env node
// Makes solcjs (the `solc` npm package pinned at the repository root) answer
// like the native `solc` command line that forge drives with `--use`:
//   solc --version            -> "Version: <x.y.z+commit...>"
//   solc --standard-json ...  -> standard-JSON input on stdin, output on stdout
// Other flags forge passes (--allow-paths, --base-path, --include-path) only
// widen where imports may be read from; they are honoured by the import callback.
"use strict";
const fs = require("fs");
const path = require("path");

const solc = require(path.join(__dirname, "..", "node_modules", "solc"));
const args = process.argv.slice(2);

if (args.includes("--version") || args.includes("-v")) {
  const v = solc.version().replace(".Emscripten.clang", ".Linux.g++");
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + v + "\n");
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write("solc-wrapper: only --version and --standard-json are supported (got: " + args.join(" ") + ")\n");
  process.exit(2);
}

const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--base-path" || args[i] === "--include-path") roots.push(args[i + 1]);
  if (args[i] === "--allow-paths") roots.push(...String(args[i + 1]).split(","));
}

function findImports(p) {
  for (const root of roots) {
    const full = path.isAbsolute(p) ? p : path.join(root, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: "file not found: " + p };
}

const input = fs.readFileSync(0, "utf8");
const output = solc.compile(input, { import: findImports });
process.stdout.write(output);
