/** Where ferry's other built files are (workers, child programs, the UI, package.json), whether the code asking runs from dist/src or from the bundle in dist/bundle. */
import { fileURLToPath } from 'node:url';

/**
 * dist/src/, as a URL ending in a slash. This module is dist/src/util/built-files.js, or a part of a chunk
 * in dist/bundle/ (tools/bundle.ts), whose siblings are chunks: an `import.meta.url` there does not say
 * where dist/src's files are, so every such path goes through here.
 */
const SRC = new URL(new URL('.', import.meta.url).pathname.endsWith('/dist/bundle/') ? '../src/' : '../', import.meta.url);

/** A file of the build, named relative to dist/src (`backup/encode-worker.js`, `../ui`, `../../package.json`). */
export function builtUrl(relative: string): URL {
  return new URL(relative, SRC);
}

/** builtUrl as a path. */
export function builtPath(relative: string): string {
  return fileURLToPath(builtUrl(relative));
}
