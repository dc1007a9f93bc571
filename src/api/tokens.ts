/** Bearer tokens for the API over TCP: made, listed, revoked, checked; stored hashed. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { readJson, writeFileAtomic } from '../util/atomic.js';
import { FerryError, errorMessage } from '../util/errors.js';
import type { Quarantine } from '../util/quarantine.js';

export type TokenRole = 'read' | 'admin';

/** What `ferry token ls` and GET /v1/tokens show: never the secret, nor its hash. */
export interface TokenInfo {
  name: string;
  role: TokenRole;
  createdAt: string;
  lastUsedAt: string | null;
}

interface StoredToken extends TokenInfo {
  /** SHA-256 of the token, hex. Tokens are 32 random bytes: a plain hash is enough (no dictionary to guess from). */
  sha256: string;
}

interface TokenFile {
  version: 1;
  tokens: StoredToken[];
}

const TOKEN_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
const TOKEN_PREFIX = 'ferry_';
/** lastUsedAt is kept to the minute on disk: a busy scraper must not rewrite the file on every request. */
const LAST_USED_PERSIST_MS = 60_000;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Bearer tokens for the control API over TCP. Created on the host (unix socket, root) and shown once;
 * only their SHA-256 is stored, in DATA_DIR/tokens.json (mode 0600, written atomically).
 */
export class TokenStore {
  private tokens: StoredToken[] = [];
  private persistedLastUse = new Map<string, number>();
  private saving: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly quarantine?: Quarantine,
  ) {}

  static inDataDir(dataDir: string, log: Logger, quarantine?: Quarantine): TokenStore {
    return new TokenStore(join(dataDir, 'tokens.json'), log, quarantine);
  }

  /**
   * Read the tokens. An unreadable file is moved aside and ferryd starts with no tokens: the API over TCP
   * then refuses every request (never more access than before) until tokens are made again.
   */
  async load(): Promise<void> {
    let tokens: StoredToken[];
    try {
      const file = await readJson<TokenFile>(this.path);
      tokens = file === undefined ? [] : (file?.tokens as StoredToken[]);
      if (!Array.isArray(tokens) || tokens.some((t) => typeof t?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(t.sha256) || (t.role !== 'read' && t.role !== 'admin'))) {
        throw new Error('not a valid token file');
      }
    } catch (err) {
      const assumed = 'ferryd started with no API tokens: the API over TCP refuses every token until new ones are made with `ferry token create`.';
      if (!this.quarantine) throw new FerryError('invalid', `cannot read the API tokens in ${this.path}: ${errorMessage(err)}; fix or remove the file (tokens in it stop working)`);
      await this.quarantine.moveAside(this.path, err, assumed);
      tokens = [];
    }
    this.tokens = tokens;
  }

  list(): TokenInfo[] {
    return this.tokens.map(({ name, role, createdAt, lastUsedAt }) => ({ name, role, createdAt, lastUsedAt }));
  }

  /** Make a token; the secret is in the answer and nowhere else. */
  async create(role: TokenRole, name?: string): Promise<TokenInfo & { token: string }> {
    if (name !== undefined && !TOKEN_NAME.test(name)) {
      throw new FerryError('invalid', `token name ${JSON.stringify(name)}: use 1-64 characters of [a-zA-Z0-9_.-], starting with a letter or digit`);
    }
    const finalName = name ?? `${role}-${randomBytes(3).toString('hex')}`;
    if (this.tokens.some((t) => t.name === finalName)) {
      throw new FerryError('exists', `a token named ${finalName} already exists; pick another name or remove it first with \`ferry token rm ${finalName}\``);
    }
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const rec: StoredToken = { name: finalName, role, createdAt: new Date().toISOString(), lastUsedAt: null, sha256: sha256(token).toString('hex') };
    this.tokens = [...this.tokens, rec];
    await this.save();
    this.log.info({ token: finalName, role }, 'API token created');
    return { name: rec.name, role, createdAt: rec.createdAt, lastUsedAt: null, token };
  }

  async remove(name: string): Promise<TokenInfo> {
    const t = this.tokens.find((x) => x.name === name);
    if (!t) throw new FerryError('not_found', `no token named ${name}; \`ferry token ls\` lists them`);
    this.tokens = this.tokens.filter((x) => x !== t);
    await this.save();
    this.log.info({ token: name }, 'API token removed');
    return { name: t.name, role: t.role, createdAt: t.createdAt, lastUsedAt: t.lastUsedAt };
  }

  /**
   * The token a bearer secret belongs to, or undefined. Every stored hash is compared in constant time
   * (no early exit), so the answer time does not tell how close a guess was.
   */
  verify(secret: string): TokenInfo | undefined {
    const h = sha256(secret);
    let found: StoredToken | undefined;
    for (const t of this.tokens) {
      if (timingSafeEqual(h, Buffer.from(t.sha256, 'hex')) && !found) found = t;
    }
    if (!found) return undefined;
    const now = Date.now();
    found.lastUsedAt = new Date(now).toISOString();
    if (now - (this.persistedLastUse.get(found.name) ?? 0) > LAST_USED_PERSIST_MS) {
      this.persistedLastUse.set(found.name, now);
      void this.save().catch((err) => this.log.warn({ err: errorMessage(err) }, 'could not record when an API token was last used'));
    }
    return { name: found.name, role: found.role, createdAt: found.createdAt, lastUsedAt: found.lastUsedAt };
  }

  /** Wait for a pending write (at shutdown). */
  async flush(): Promise<void> {
    await this.saving.catch(() => undefined);
  }

  /** Writes are serialised: the last one carries the newest state. */
  private save(): Promise<void> {
    const next = this.saving.catch(() => undefined).then(() => {
      const file: TokenFile = { version: 1, tokens: this.tokens };
      return writeFileAtomic(this.path, JSON.stringify(file, null, 2) + '\n', 0o600);
    });
    this.saving = next;
    return next;
  }
}
