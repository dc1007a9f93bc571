/** Request validation for the API routes: zod schemas, and their failures as errors that name the field. */
import { z } from 'zod';
import { FerryError } from '../util/errors.js';
import { shown } from '../util/shown.js';

/** A query flag: true, false, 1 or 0. */
export const flag = z.enum(['true', 'false', '1', '0']).optional().transform((v) => v === 'true' || v === '1');

type Issue = z.core.$ZodIssue;

/** One problem of a request, in words: the field, what it should be, never "received undefined". */
function issueText(i: Issue, fields: string[]): string {
  const at = i.path.map((p) => (String(p).length > 40 ? shown(String(p), 40) : String(p))).join('.');
  if (i.code === 'invalid_type') {
    const received = / received (\w+)$/.exec(i.message)?.[1];
    if (received === 'undefined') return `${at ? `${at}: ` : ''}missing (a ${i.expected})`;
    return `${at ? `${at}: ` : ''}must be a ${i.expected === 'object' ? 'JSON object' : i.expected}, not ${received === 'array' ? 'an array' : (received ?? 'that')}`;
  }
  if (i.code === 'unrecognized_keys') {
    const keys = i.keys.slice(0, 3).map((k) => shown(k, 40)).join(', ') + (i.keys.length > 3 ? ` and ${i.keys.length - 3} more` : '');
    return `${at ? `${at}: ` : ''}unknown field${i.keys.length > 1 ? 's' : ''} ${keys}${fields.length && !at ? `; accepted: ${fields.join(', ')}` : ''}`;
  }
  return `${at ? `${at}: ` : ''}${i.message}`;
}

/** The request part, checked; FerryError 'invalid' saying what was wrong. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const inner = schema instanceof z.ZodOptional ? schema.unwrap() : schema;
  const fields = inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
  throw new FerryError('invalid', `bad ${what}: ${r.error.issues.map((i) => issueText(i, fields)).join('; ')}`);
}
