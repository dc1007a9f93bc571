/**
 * Bundles the built program (dist/src/main.js and what it imports, with its dependencies) into a few files in
 * dist/bundle, which bin/ferry runs. Why: Node loads dist/src and its dependencies as ~450 files, and on a
 * slow VM that alone was ~300 ms of every ferryd start (bench/README.md, scale.ts). Run by `npm run build`,
 * after tsc, from the JavaScript tsc wrote (so the bundle runs the same code the unit tests import).
 * What stays outside: workers and child programs (started by path, from dist/src: util/built-files.ts),
 * zstd-napi (a native module), the AWS SDK and yaml (loaded on first use).
 *   node dist/tools/bundle.js
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${dist}bundle`;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [`${dist}src/main.js`],
  outdir,
  bundle: true,
  // (lazily imported modules, such as ferryd itself for the CLI, stay in chunks of their own)
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // zstd-napi is native; the AWS SDK and yaml load on first use (an S3 target; a config file or the OpenAPI
  // document), so bundling them saves no start-up, and esbuild gives a CommonJS package imported with import()
  // only its default export (yaml.parse would be undefined)
  external: ['zstd-napi', '@aws-sdk/client-s3', 'yaml'],
  // CommonJS dependencies call require(); an ES module has none of its own
  banner: { js: "import { createRequire as ferryCreateRequire } from 'node:module'; const require = ferryCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
