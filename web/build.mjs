// Bundle the monitor into site_agent/web/ (committed: pip installs it, no Node at run time).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const out = new URL("../site_agent/web/", import.meta.url);
await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  outfile: new URL("monitor.js", out).pathname,
  legalComments: "none",
  logLevel: "warning",
});
const hash = createHash("sha256");
for (const name of ["monitor.js", "monitor.css"]) hash.update(readFileSync(new URL(name, out)));
const version = hash.digest("hex").slice(0, 12);
const page = readFileSync(new URL("index.html", import.meta.url), "utf8").replaceAll("__VERSION__", version);
writeFileSync(new URL("index.html", out), page);
console.log(`monitor built: site_agent/web/ (version ${version})`);
