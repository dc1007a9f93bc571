/**
 * Suites that need root or a Docker engine skip loudly when those are missing, except under CI=true,
 * where a missing prerequisite is a failure (CI installs everything).
 */
export function skipUnless(missing: string[], suite: string): string | false {
  if (missing.length === 0) return false;
  const why = `${suite}: missing prerequisites: ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`${why} (CI=true: prerequisites are required; .ci/run installs them)`);
  process.stderr.write(`\n!!! SKIPPING ${why}\n\n`);
  return why;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
