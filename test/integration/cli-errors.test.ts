// The CLI's failures as a script reads them: exit 2 for wrong usage, 1 for the rest; with --json, {"error": {"code", "message"}} on stderr.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runFerry } from '../helpers/ferryd.js';

const NO_SOCKET = '/nonexistent/ferry-api.sock';

describe('CLI errors: exit codes and --json on stderr', () => {
  it('a usage error exits 2: text without --json, JSON with it', async () => {
    const text = await runFerry(['volume', 'ls', '--no-such-flag', '--api-socket', NO_SOCKET]);
    assert.equal(text.code, 2);
    assert.match(text.stderr, /unknown option '--no-such-flag'/);
    const json = await runFerry(['--json', 'volume', 'ls', '--no-such-flag', '--api-socket', NO_SOCKET]);
    assert.equal(json.code, 2);
    assert.equal(json.stdout, '');
    const e = JSON.parse(json.stderr) as { error: { code: string; message: string } };
    assert.equal(e.error.code, 'usage');
    assert.match(e.error.message, /unknown option '--no-such-flag'/);
  });

  it('an operational failure (ferryd unreachable) exits 1: text without --json, JSON with it', async () => {
    const text = await runFerry(['volume', 'ls', '--api-socket', NO_SOCKET]);
    assert.equal(text.code, 1);
    assert.match(text.stderr, /^ferry: cannot reach ferryd at \/nonexistent/);
    const json = await runFerry(['--json', 'volume', 'ls', '--api-socket', NO_SOCKET]);
    assert.equal(json.code, 1);
    assert.equal(json.stdout, '');
    const e = JSON.parse(json.stderr) as { error: { code: string; message: string } };
    assert.deepEqual(Object.keys(e.error).sort(), ['code', 'message']);
    assert.equal(e.error.code, 'unreachable');
    assert.match(e.error.message, /no socket there/);
  });

  it('a refused input (bad volume name) exits 1 with its code', async () => {
    const json = await runFerry(['--json', 'volume', 'inspect', 'bad/name', '--api-socket', NO_SOCKET]);
    assert.equal(json.code, 1, json.stderr);
    assert.equal((JSON.parse(json.stderr) as { error: { code: string } }).error.code, 'invalid');
  });
});
