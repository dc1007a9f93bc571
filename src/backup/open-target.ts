/** A backup target from its URL: file:///path or s3://bucket/prefix. */
import { fileURLToPath } from 'node:url';
import { FerryError } from '../util/errors.js';
import type { Target, TargetOptions } from './target.js';
import { FileTarget } from './file-target.js';
import { S3Target } from './s3-target.js';

/** A target from its URL (`file:///…` or `s3://bucket/prefix`); query parameters are ignored. */
export function openTarget(url: string, opts: TargetOptions = {}): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FerryError('invalid', `"${url}" is not a backup target URL; expected file:///path or s3://bucket/prefix`);
  }
  if (u.protocol === 'file:') {
    if (u.host && u.host !== 'localhost') throw new FerryError('invalid', `file URL "${url}" names a host; use file:///absolute/path`);
    return new FileTarget(fileURLToPath(new URL(`file://${u.pathname}`)));
  }
  if (u.protocol === 's3:') {
    if (!u.hostname) throw new FerryError('invalid', `"${url}" names no bucket; expected s3://bucket/prefix`);
    const prefix = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
    return new S3Target(u.hostname, prefix, opts.s3 ?? {});
  }
  throw new FerryError('invalid', `unsupported backup target "${url}"; expected file:///path or s3://bucket/prefix`);
}
