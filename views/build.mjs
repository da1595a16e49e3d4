// Bundle each view (src/<name>.js + src/<name>.html) and the /lab host (host/lab.*) into one self-contained HTML
// file under mcp_server/views/: inline script and style, a Content-Security-Policy that allows no network, and a
// hash of every source file so that a test (tests/server/test_views_bundle.py) can tell when a bundle is stale.
//   node build.mjs          build
//   node build.mjs --check  exit 1 if a committed bundle differs from a fresh build
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "mcp_server", "views");
const VIEWS = readdirSync(join(here, "src")).filter((f) => f.endsWith(".html")).map((f) => f.slice(0, -5));
// Views: nothing but inline code, inline styles and data:/blob: images. The /lab host may also talk to its own
// origin (/mcp) and hosts views in srcdoc iframes (which inherit this policy).
const VIEW_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:";
const HOST_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'; frame-src 'self' about:";

/** sha256 over every file the bundles are made from (the same walk as tests/server/test_views_bundle.py). */
export function sourcesHash() {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else files.push(relative(here, p).split("\\").join("/"));
    }
  };
  walk(join(here, "src"));
  walk(join(here, "host"));
  files.push("build.mjs", "package.json", "package-lock.json");
  const h = createHash("sha256");
  for (const f of files.sort()) h.update(f + "\0").update(readFileSync(join(here, f))).update("\0");
  return h.digest("hex");
}

// zod (used by the MCP SDK for message schemas) bundles error messages in ~50 languages; keep English only.
const englishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/][^\\/]+\.js$/ }, (args) => {
      if (/[\\/](en|index)\.js$/.test(args.path)) return undefined;
      return { contents: "export default function () { return { localeError: () => undefined }; }" };
    });
  },
};

async function bundle(entry) {
  const res = await build({
    entryPoints: [entry], bundle: true, minify: true, format: "iife", platform: "browser", target: "es2022",
    write: false, legalComments: "none", logLevel: "warning", plugins: [englishOnly],
  });
  return res.outputFiles[0].text.replaceAll("</script", "<\\/script");
}

async function page(template, script, csp, hash) {
  const css = readFileSync(join(here, "src", "base.css"), "utf8");
  return readFileSync(template, "utf8")
    .replace("<!--CSP-->", `<meta http-equiv="Content-Security-Policy" content="${csp}">\n<meta name="ml-lab-sources" content="${hash}">`)
    .replace("/*CSS*/", () => css)
    .replace("<!--SCRIPT-->", () => `<script>${script}</script>`);
}

const hash = sourcesHash();
const pages = {};
for (const name of VIEWS) {
  pages[`${name}.html`] = await page(join(here, "src", `${name}.html`), await bundle(join(here, "src", `${name}.js`)), VIEW_CSP, hash);
}
pages["lab.html"] = await page(join(here, "host", "lab.html"), await bundle(join(here, "host", "lab.js")), HOST_CSP, hash);

const check = process.argv.includes("--check");
let stale = 0;
for (const [file, html] of Object.entries(pages)) {
  const path = join(out, file);
  if (check) {
    let old = "";
    try { old = readFileSync(path, "utf8"); } catch {}
    if (old !== html) { console.error(`stale: ${relative(process.cwd(), path)}`); stale++; }
  } else {
    writeFileSync(path, html);
    console.log(`${relative(process.cwd(), path)}: ${(Buffer.byteLength(html) / 1024).toFixed(1)} KiB`);
  }
}
process.exit(stale ? 1 : 0);
