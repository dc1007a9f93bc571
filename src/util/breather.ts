/** Lets the event loop answer what waits (a Docker plugin call) in the middle of a loop over thousands of items. */

/**
 * A loop over 10,000 volumes whose steps await nothing but resolved promises runs as one task: the plugin calls
 * that arrive meanwhile wait for all of it (a usage pass over an idle shared pool held Docker's calls ~100 ms).
 * `await breathe()` once per item gives the event loop a turn every `every` items.
 */
export function breather(every = 256): () => Promise<void> | undefined {
  let n = 0;
  return () => (++n % every === 0 ? new Promise<void>((r) => setImmediate(r)) : undefined);
}
