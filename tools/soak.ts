/**
 * npm run soak -- --minutes N [--seed S] [--fault-every SECONDS]
 *
 * Three simulated Docker hosts on one GlusterFS pool (plus local pools), a seeded random stream of user
 * operations through the docker and ferry CLIs, kill -9 of a random ferryd and restarts of a random
 * dockerd; invariants checked at the end (tools/soak-invariants.ts). Prints a summary; exits 1 on any
 * invariant violation. See docs/testing.md. Needs root.
 */
import { Command, InvalidArgumentError } from 'commander';
import { formatSummary, runSoak } from './soak-driver.js';

const int = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a whole number`);
  return n;
};

const program = new Command('soak')
  .description('a seeded random soak of ferry on three simulated hosts with faults; invariants checked at the end')
  .option('--minutes <n>', 'how long the operations run', int('minutes'), 3)
  .option('--seed <n>', 'seed of the random choices (printed by every run: replay a failure with it)', int('seed'))
  .option('--fault-every <seconds>', 'mean time between faults (default 60 from 10 minutes on, else 40)', int('fault-every'))
  .option('--dir <dir>', 'parent dir of the cluster and of the soak log', '/tmp')
  .showHelpAfterError();

if (typeof process.getuid === 'function' && process.getuid() !== 0) {
  console.error('npm run soak needs root (network namespaces, dockerd, GlusterFS)');
  process.exit(1);
}
program.parse(process.argv);
const o = program.opts<{ minutes: number; seed?: number; faultEvery?: number; dir: string }>();
try {
  const s = await runSoak({
    minutes: o.minutes,
    parentDir: o.dir,
    log: (l) => console.error(l),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.faultEvery !== undefined ? { faultEverySec: o.faultEvery } : {}),
  });
  console.log(formatSummary(s));
  console.log(`log: ${s.logFile}`);
  process.exit(s.violations.length ? 1 : 0);
} catch (e) {
  console.error(`soak failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exit(2);
}
