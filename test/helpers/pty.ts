// Run the ferry CLI under a pseudo-terminal of a given width (util-linux `script`), and read back what a person saw.
import { spawn } from 'node:child_process';
import { FERRY_BIN } from './ferryd.js';

export interface PtyResult {
  code: number;
  /** Everything written to the terminal (stdout and stderr both), with its \r and escape codes. */
  raw: string;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `ferry ARGS` with stdout and stderr on a terminal of `cols` columns; resolves when it exits. */
export function ferryInPty(args: string[], cols: number, env: Record<string, string> = {}): Promise<PtyResult> {
  const cmd = `stty cols ${cols} rows 24 && exec ${[process.execPath, FERRY_BIN, ...args].map(quote).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-q', '-e', '-c', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm', ...env } });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => out.push(d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? 1, raw: Buffer.concat(out).toString('utf8') }));
  });
}

/**
 * The lines as drawn: each redraw (after a carriage return) is a frame of its own; clear-to-end-of-line
 * codes are dropped; empty frames (a line cleared before the next is written) are left out.
 */
export function frames(raw: string): string[] {
  return raw
    .replace(/\r\n/g, '\n')
    .split(/[\r\n]/)
    .map((l) => l.replace(/\x1b\[K/g, ''))
    .filter((l) => l.length > 0);
}
