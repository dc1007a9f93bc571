// Config file errors as a person reads them: the full path of the key, the expected type in words, the YAML line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadConfig } from '../../src/daemon/config.js';

async function errorOf(yaml: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-config-'));
  try {
    writeFileSync(join(dir, 'ferry.yaml'), yaml);
    await loadConfig({ config: join(dir, 'ferry.yaml') });
    return '';
  } catch (err) {
    return (err as Error).message;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('config file errors', () => {
  it('a misspelt key of a backup target: full path, the known keys, its line', async () => {
    const m = await errorOf(['trashRetention: 7d', 'backupTargets:', '  nas:', '    url: file:///srv/backups', '    pasword: hunter2', ''].join('\n'));
    assert.match(m, /backupTargets\.nas\.pasword: unknown setting; known: url, .*passwordFile/);
    assert.match(m, /\(line 5\)/);
  });
  it('a value of the wrong type: what was expected in words, and its line', async () => {
    const m = await errorOf(['backupTargets:', '  nas:', '    url: [1, 2]', ''].join('\n'));
    assert.match(m, /backupTargets\.nas\.url: expected a text, not a list \(line 3\)/);
  });
  it('image pools: what belongs to them, a size that is not one, an unknown kind', async () => {
    const onDir = await errorOf(['pools:', '  nas:', '    path: /srv/nas', '    fs: xfs', ''].join('\n'));
    assert.match(onDir, /pools\.nas: fs, defaultSize and allocate are for image pools \(kind: image\)/);
    const badSize = await errorOf(['pools:', '  img:', '    kind: image', '    path: /srv/img', '    defaultSize: lots', ''].join('\n'));
    assert.match(badSize, /pools\.img: defaultSize="lots": expected a size such as 10G/);
    const kind = await errorOf(['pools:', '  img:', '    kind: block', '    path: /srv/img', ''].join('\n'));
    assert.match(kind, /pools\.img\.kind: .*dir \(a directory per volume\) or image/);
  });
});
