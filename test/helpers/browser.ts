import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import type { Ferryd } from './ferryd.js';

/** Debian's Chromium (`apt-get install chromium`): Playwright drives it, it never downloads a browser. */
export const CHROMIUM = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';

export function chromiumMissing(): string[] {
  return existsSync(CHROMIUM) ? [] : [`chromium at ${CHROMIUM} (apt-get install chromium)`];
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/** The address ferryd's TCP listener bound (it logs it in its "ferryd ready" line), as http://HOST:PORT. */
export async function tcpBase(f: Ferryd): Promise<string> {
  const ready = (await f.logs()).split('\n').filter((l) => l.includes('"msg":"ferryd ready"')).pop() ?? '';
  const addr = (JSON.parse(ready) as { apiListen?: string }).apiListen;
  if (!addr) throw new Error(`ferryd did not report its TCP address: ${ready}`);
  return `http://${addr}`;
}

/** ferryd's log from its start, for a failing assertion's message. */
export async function tail(f: Ferryd, lines = 30): Promise<string> {
  return (await readFile(`${f.dir}/ferryd.log`, 'utf8').catch(() => '')).split('\n').slice(-lines).join('\n');
}
