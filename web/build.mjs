// Bundle the monitor into site_agent/web/ (committed: pip installs it, no Node at run time).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

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
// The sources this build came from, so a test (without Node) can tell a stale build:
// sha256 over each file's name and bytes, sorted by name.
const sources = createHash("sha256");
const files = [
  "index.html",
  "package-lock.json",
  ...readdirSync(new URL("src/", import.meta.url)).map((name) => `src/${name}`),
].sort();
for (const name of files) {
  sources.update(name + "\n");
  sources.update(readFileSync(new URL(name, import.meta.url)));
}
const page = readFileSync(new URL("index.html", import.meta.url), "utf8")
  .replaceAll("__VERSION__", version)
  .replace("<!doctype html>", `<!doctype html>\n<!-- built by scripts/build-web from sources ${sources.digest("hex")} -->`);
writeFileSync(new URL("index.html", out), page);
console.log(`monitor built: site_agent/web/ (version ${version})`);
