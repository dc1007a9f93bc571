/** Run a program without a shell. */
import { execFile } from 'node:child_process';
import { FerryError } from './errors.js';

/** Run a program (never a shell); reject with its stderr when it fails. */
export function execProgram(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 0, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim().split('\n').slice(-3).join(' / ');
        reject(new FerryError('internal', `${cmd} ${args.slice(0, 4).join(' ')}${args.length > 4 ? ' …' : ''} failed: ${detail}`));
      } else resolve(stdout);
    });
  });
}
