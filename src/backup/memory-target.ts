/** A Target in memory: for fast tests of the engine, and for anyone who wants a repository that a restart forgets. */
import { FerryError } from '../util/errors.js';
import { byteLength, joined, type ObjectInfo, type Target } from './target.js';

let seq = 0;

export class MemoryTarget implements Target {
  readonly url = `memory:///${++seq}`;
  bytesWritten = 0;
  /** The objects by name (tests may damage them on purpose). */
  readonly objects = new Map<string, Buffer>();

  private object(name: string): Buffer {
    const o = this.objects.get(name);
    if (!o) throw new FerryError('not_found', `${this.url}: ${name} does not exist`, { target: this.url, name });
    return o;
  }

  async get(name: string): Promise<Buffer> {
    return Buffer.from(this.object(name));
  }

  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    return Buffer.from(this.object(name).subarray(offset, offset + length));
  }

  async put(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    this.objects.set(name, Buffer.from(joined(data)));
    this.bytesWritten += byteLength(data);
  }

  async list(folder: string): Promise<ObjectInfo[]> {
    const prefix = `${folder}/`;
    return [...this.objects].filter(([n]) => n.startsWith(prefix)).map(([name, b]) => ({ name, size: b.length }));
  }

  async stat(name: string): Promise<number | undefined> {
    return this.objects.get(name)?.length;
  }

  async remove(name: string): Promise<void> {
    this.objects.delete(name);
  }

  async probe(): Promise<void> {}

  close(): void {}
}
