/** bin/ferry runs the bundle of the build (dist/bundle), never one older than dist/src; built files are found from either place. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/ferryd.js';

describe('the bundle', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'ferry-bundle-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('is what npm run build leaves for bin/ferry to run', () => {
    const bundle = statSync(join(ROOT, 'dist/bundle/main.js'), { throwIfNoEntry: false });
    assert.ok(bundle, 'dist/bundle/main.js is missing: npm run build makes it (tools/bundle.ts)');
    assert.ok(bundle.mtimeMs >= statSync(join(ROOT, 'dist/src/main.js')).mtimeMs, 'the bundle is older than dist/src: run npm run build');
    assert.equal(execFileSync(process.execPath, [join(ROOT, 'bin/ferry'), '--version'], { encoding: 'utf8' }).trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('runs when it is not older than dist/src/main.js, and dist/src runs otherwise', () => {
    const app = join(tmp, 'app');
    mkdirSync(join(app, 'bin'), { recursive: true });
    mkdirSync(join(app, 'dist/src'), { recursive: true });
    mkdirSync(join(app, 'dist/bundle'), { recursive: true });
    copyFileSync(join(ROOT, 'bin/ferry'), join(app, 'bin/ferry'));
    copyFileSync(join(ROOT, 'bin/package.json'), join(app, 'bin/package.json'));
    writeFileSync(join(app, 'package.json'), '{"type":"module"}\n');
    const src = join(app, 'dist/src/main.js');
    const bundle = join(app, 'dist/bundle/main.js');
    writeFileSync(src, 'console.log("dist/src");\n');
    const run = () => execFileSync(process.execPath, [join(app, 'bin/ferry')], { encoding: 'utf8' }).trim();

    assert.equal(run(), 'dist/src', 'no bundle');
    writeFileSync(bundle, 'console.log("bundle");\n');
    utimesSync(src, new Date(1_000_000_000_000), new Date(1_000_000_000_000));
    utimesSync(bundle, new Date(1_000_000_001_000), new Date(1_000_000_001_000));
    assert.equal(run(), 'bundle', 'a bundle newer than dist/src');
    utimesSync(src, new Date(1_000_000_002_000), new Date(1_000_000_002_000));
    assert.equal(run(), 'dist/src', 'dist/src built again (a tsc alone) after the bundle');
  });

  it('finds workers, the UI and package.json in dist/src from the bundle as from dist/src', async () => {
    const dist = join(tmp, 'dist');
    mkdirSync(join(dist, 'src/util'), { recursive: true });
    mkdirSync(join(dist, 'bundle'), { recursive: true });
    const code = join(ROOT, 'dist/src/util/built-files.js');
    copyFileSync(code, join(dist, 'src/util/built-files.js'));
    copyFileSync(code, join(dist, 'bundle/chunk-TEST.js'));
    for (const where of ['src/util/built-files.js', 'bundle/chunk-TEST.js']) {
      const m = (await import(pathToFileURL(join(dist, where)).href)) as typeof import('../../src/util/built-files.js');
      assert.equal(m.builtPath('backup/encode-worker.js'), join(dist, 'src/backup/encode-worker.js'), where);
      assert.equal(m.builtPath('../ui'), join(dist, 'ui'), where);
      assert.equal(m.builtPath('../../package.json'), join(tmp, 'package.json'), where);
    }
  });
});
