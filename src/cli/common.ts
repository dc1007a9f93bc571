import type { Command } from 'commander';
import { ApiClient, DEFAULT_API_SOCKET } from './client.js';
import { FerryError } from '../util/errors.js';

interface GlobalOpts {
  apiSocket?: string;
  json?: boolean;
}

export function client(cmd: Command): ApiClient {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  return new ApiClient(g.apiSocket ?? process.env.FERRY_API_SOCKET ?? DEFAULT_API_SOCKET);
}

export function wantsJson(cmd: Command): boolean {
  return Boolean(cmd.optsWithGlobals<GlobalOpts>().json);
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/** Collect repeated `-o key=value` flags into an object; a malformed pair is a usage error. */
export function keyValue(what: string) {
  return (pair: string, acc: Record<string, string> = {}): Record<string, string> => {
    const i = pair.indexOf('=');
    if (i <= 0) throw new FerryError('invalid', `${what} ${JSON.stringify(pair)} must be written key=value`);
    return { ...acc, [pair.slice(0, i)]: pair.slice(i + 1) };
  };
}

export const enc = encodeURIComponent;

