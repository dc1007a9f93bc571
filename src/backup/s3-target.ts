/** A backup target in an S3-compatible bucket (`s3://bucket/prefix`). */
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { FerryError, errorMessage } from '../util/errors.js';
import { joined, type ObjectInfo, type S3Options, type Target } from './target.js';

type Sdk = typeof import('@aws-sdk/client-s3');
/**
 * The AWS SDK loads on the first request to an S3 target, not with ferryd: importing it alone takes
 * 260-280 ms on 2 cores, which every ferryd start paid, with or without an S3 target.
 */
let sdkLoading: Promise<Sdk> | undefined;

export class S3Target implements Target {
  readonly url: string;
  bytesWritten = 0;
  private readonly config: S3ClientConfig;
  private connected: Promise<{ sdk: Sdk; client: S3Client }> | undefined;
  private readonly endpoint: string;

  constructor(
    readonly bucket: string,
    readonly prefix: string,
    opts: S3Options,
  ) {
    this.url = `s3://${bucket}${prefix ? '/' + prefix : ''}`;
    const env = process.env;
    const endpoint = opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    const region = opts.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
    this.endpoint = endpoint ?? `https://s3.${region}.amazonaws.com`;
    this.config = {
      region,
      endpoint,
      forcePathStyle: opts.pathStyle ?? false,
      credentials: opts.accessKeyId && opts.secretAccessKey ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, sessionToken: opts.sessionToken } : undefined,
      // Fail fast when the endpoint is down instead of retrying for minutes.
      maxAttempts: 3,
      // ...and when it hangs (a stopped server, a NAS that accepts connections and answers nothing): the SDK's
      // requestTimeout only logs a warning, and without an idle timeout a request waits forever, and with it
      // the job and every other backup of its volume (seen in a user trial: 6 minutes, until the server went on)
      requestHandler: { connectionTimeout: opts.connectTimeoutMs ?? 5000, socketTimeout: opts.idleTimeoutMs ?? 20_000 },
    };
  }

  /** The SDK and this target's client, made on the first request. */
  private s3(): Promise<{ sdk: Sdk; client: S3Client }> {
    return (this.connected ??= (sdkLoading ??= import('@aws-sdk/client-s3')).then((sdk) => ({ sdk, client: new sdk.S3Client(this.config) })));
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}/${name}` : name;
  }

  private fail(err: unknown, doing: string, name: string): never {
    if (err instanceof FerryError) throw err;
    const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
    const status = e.$metadata?.httpStatusCode;
    if (e.name === 'NoSuchBucket') throw new FerryError('not_found', `bucket "${this.bucket}" does not exist at ${this.endpoint}; create it first`, { target: this.url });
    if (e.name === 'NoSuchKey' || e.name === 'NotFound' || status === 404) throw new FerryError('not_found', `${this.url}: ${name} does not exist`, { target: this.url, name });
    if (status === 507 || e.name === 'QuotaExceeded' || e.name === 'InsufficientStorage') throw new FerryError('no_space', `${this.url} is full (${e.name}) while ${doing} ${name}`, { target: this.url, name });
    if (status === 403 || e.name === 'InvalidAccessKeyId' || e.name === 'SignatureDoesNotMatch' || e.name === 'AccessDenied') {
      throw new FerryError('invalid', `${this.url}: access denied by ${this.endpoint} (${e.name}); check the credentials`, { target: this.url });
    }
    const code = e.code ?? (err as { cause?: { code?: string } }).cause?.code;
    if (status === undefined || (status >= 500 && status !== 501)) {
      const why = code ?? e.name ?? 'no answer';
      throw new FerryError('unavailable', `S3 endpoint ${this.endpoint} is unreachable or failing (${why}: ${errorMessage(err)}) while ${doing} ${name}`, { target: this.url, endpoint: this.endpoint });
    }
    throw new FerryError('internal', `${this.url}: ${doing} ${name} failed: ${e.name ?? ''} ${errorMessage(err)}`, { target: this.url });
  }

  async get(name: string): Promise<Buffer> {
    try {
      const { sdk, client } = await this.s3();
      const res = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      this.fail(err, 'reading', name);
    }
  }

  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    try {
      const { sdk, client } = await this.s3();
      const res = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.key(name), Range: `bytes=${offset}-${offset + length - 1}` }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      this.fail(err, 'reading', name);
    }
  }

  async put(name: string, parts: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const data = joined(parts);
    try {
      const { sdk, client } = await this.s3();
      await client.send(new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.key(name), Body: data, ContentLength: data.length }));
      this.bytesWritten += data.length;
    } catch (err) {
      this.fail(err, 'writing', name);
    }
  }

  async list(folder: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const base = this.prefix ? `${this.prefix}/` : '';
    let token: string | undefined;
    try {
      do {
        const { sdk, client } = await this.s3();
        const res = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${base}${folder}/`, ContinuationToken: token }));
        for (const o of res.Contents ?? []) if (o.Key) out.push({ name: o.Key.slice(base.length), size: o.Size ?? 0 });
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      this.fail(err, 'listing', folder);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(name: string): Promise<number | undefined> {
    try {
      const { sdk, client } = await this.s3();
      const res = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
      return res.ContentLength ?? 0;
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
      this.fail(err, 'reading', name);
    }
  }

  async remove(name: string): Promise<void> {
    try {
      const { sdk, client } = await this.s3();
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    } catch (err) {
      const e = err as { name?: string };
      if (e.name === 'NoSuchKey') return;
      this.fail(err, 'removing', name);
    }
  }

  async probe(): Promise<void> {
    try {
      const { sdk, client } = await this.s3();
      await client.send(new sdk.HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) throw new FerryError('not_found', `bucket "${this.bucket}" does not exist at ${this.endpoint}; create it first`, { target: this.url });
      this.fail(err, 'reaching', 'the bucket');
    }
  }

  close(): void {
    const c = this.connected;
    this.connected = undefined;
    void c?.then(({ client }) => client.destroy(), () => undefined);
  }
}
