// Bundles the browser side into the Python package (run by `make web`; see docs/browser.md):
//   src/client/client.js -> ../src/avatar_mf/webclient/client.js  (JsSIP)
//   src/dcapp/app.js     -> ../src/avatar_mf/dcapp/app.js         (three.js, GLTFLoader)
// Deterministic: the same sources and lock file give the same bytes (tests/browser checks the
// committed bundles against a fresh build). `node build.mjs --out DIR` writes into DIR instead.
import { build } from "esbuild";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outIndex = process.argv.indexOf("--out");
const outRoot = outIndex > 0 ? resolve(process.argv[outIndex + 1]) : resolve(here, "../src/avatar_mf");

const common = {
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome110", "firefox115", "safari16"],
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
};

await build({ ...common, entryPoints: [join(here, "src/client/client.js")], outfile: join(outRoot, "webclient/client.js") });
await build({ ...common, entryPoints: [join(here, "src/dcapp/app.js")], outfile: join(outRoot, "dcapp/app.js") });
