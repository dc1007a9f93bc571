/**
 * The operator's fencing hook (`fenceCommand` in the config): a command run before an rwo volume is taken
 * over from a node that stopped beating, e.g. to power that node off through its BMC or to cut its port on
 * the storage network. The takeover waits for it and happens only if it exits 0. It runs under /bin/sh with
 * FERRY_FENCE_NODE (the old holder), FERRY_FENCE_POOL, FERRY_FENCE_VOLUME and FERRY_FENCE_LAST_SEEN set.
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import { FerryError } from '../util/errors.js';

export const FENCE_COMMAND_TIMEOUT_MS = 60_000;

export function runFenceCommand(command: string, who: { node: string; pool: string; volume: string; lastSeen?: string | undefined }, log: Logger, timeoutMs = FENCE_COMMAND_TIMEOUT_MS): Promise<void> {
  const env = { ...process.env, FERRY_FENCE_NODE: who.node, FERRY_FENCE_POOL: who.pool, FERRY_FENCE_VOLUME: who.volume, FERRY_FENCE_LAST_SEEN: who.lastSeen ?? '' };
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim().split('\n').slice(-3).join(' / ');
        log.error({ ...who, command }, `fenceCommand failed: the volume is not taken over: ${detail}`);
        reject(new FerryError('unavailable', `volume ${who.volume} is not taken over from node ${who.node}: the fenceCommand failed (${detail}); it is tried again at the next mount`, { holder: who.node }));
        return;
      }
      log.warn({ ...who, command, stdout: stdout.trim().slice(0, 500) }, `fenceCommand fenced node ${who.node}`);
      resolve();
    });
  });
}
