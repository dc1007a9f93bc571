/**
 * Shared pools, side by side with their peers, on two Docker hosts (test/helpers/cluster.ts) in a Swarm and
 * a GlusterFS volume (test/helpers/gluster.ts) that each host's ferryd mounts itself:
 *   1. a Swarm service moved from hostA to hostB: time until its task runs on B, and whether it finds its
 *      data, with a ferry volume in the GlusterFS pool vs Docker's built-in `local` driver;
 *   2. in-container writes (1 GiB with fsync; 5,000 small files) on a ferry volume in the GlusterFS pool vs a
 *      plain bind mount of a directory of the same GlusterFS mount;
 *   3. `docker volume ls` on a host with 1,000 volumes in the shared pool, all created through the other
 *      host, vs the same engine listing 1,000 `local` volumes.
 *   node dist/bench/shared.js [moves=5] [throughputReps=3] [--moves-only]
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startCluster, type Cluster, type ClusterHost } from '../test/helpers/cluster.js';
import { startGluster } from '../test/helpers/gluster.js';
import { loadAverage, median, pluginClient, reporter, shOut } from './lib.js';

const MOVES = Number(process.argv[2] ?? 5);
const REPS = Number(process.argv[3] ?? 3);
/** Section 1 only (the other two take most of the run's time). */
const MOVES_ONLY = process.argv.includes('--moves-only');
const MANY = 1000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const t0Run = performance.now();
const progress = (msg: string) => process.stderr.write(`[bench/shared +${((performance.now() - t0Run) / 1000).toFixed(0)}s] ${msg}\n`);
const { emit } = reporter();
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

let c: Cluster | undefined;
process.once('SIGINT', () => void c?.stop().finally(() => process.exit(130)));

/** Polls hostB's engine until the service's container runs there; returns its id. */
async function runningOn(h: ClusterHost, service: string, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const id = (await h.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`, '--filter', 'status=running'])).stdout.trim();
    if (id) return id.split('\n')[0]!;
    if (Date.now() > deadline) throw new Error(`${service} never ran on ${h.name}`);
    await sleep(50);
  }
}

/** Seconds a shell command takes inside a container, by /proc/uptime (busybox has no %N). */
const TIMED = (cmd: string) => `s=$(cut -d" " -f1 /proc/uptime); ${cmd}; e=$(cut -d" " -f1 /proc/uptime); echo "elapsed $s $e"`;
const elapsed = (text: string) => {
  const m = /elapsed ([\d.]+) ([\d.]+)/.exec(text);
  if (!m) throw new Error(`no timing in: ${text}`);
  return (Number(m[2]) - Number(m[1])) * 1000;
};

try {
  progress('cluster: 2 hosts, GlusterFS, ferryd on each (pool nas on gv0), Swarm');
  c = await startCluster({ hosts: 2, name: 'bench' });
  const g = await startGluster(c);
  const [A, B] = c.hosts as [ClusterHost, ClusterHost];
  const nas = join(c.dir, 'nas');
  await Promise.all(
    c.hosts.map((h) =>
      h.startFerryd({
        logLevel: 'info',
        configYaml: [`node: ${h.name}`, 'defaultPool: nas', 'pools:', '  nas:', `    path: ${nas}`, '    shared: true', '    mount:', '      type: glusterfs', `      device: "${g.device}"`].join('\n'),
      }),
    ),
  );
  await c.swarm();
  const cpu = execFileSync('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc; uname -r"], { encoding: 'utf8' }).trim().split('\n');
  emit(`# bench/shared — ${new Date().toISOString().slice(0, 10)}`);
  emit();
  emit(`Machine: ${cpu[0]?.trim()}, ${cpu[1]} cores, kernel ${cpu[2]}; 2 private Docker 20.10 hosts on a bridge LAN, GlusterFS 10.3 (one brick on the root ext4) at ${g.device}, mounted by each host's ferryd.`);
  emit(`Commit ${shOut('git', ['rev-parse', '--short', 'HEAD'])}; load average at the start ${loadAverage()}; \`node dist/bench/shared.js ${process.argv.slice(2).join(' ')}\`.`);
  emit();

  // ---- 1. service move ----
  progress(`1. ${MOVES} moves hostA -> hostB per driver, interleaved`);
  const moves: Record<'ferry' | 'local', { ms: number[]; found: string[]; checkMs: number[]; runningMs: number[] }> = {
    ferry: { ms: [], found: [], checkMs: [], runningMs: [] },
    local: { ms: [], found: [], checkMs: [], runningMs: [] },
  };
  for (let i = 0; i < MOVES; i++) {
    for (const driver of ['ferry', 'local'] as const) {
      const svc = `mv-${driver}-${i}`;
      await c.manager.dockerOk([
        'service', 'create', '--detach', '--name', svc, '--no-resolve-image', '--stop-grace-period', '1s',
        '--mount', `type=volume,source=${svc}-data,target=/data,volume-driver=${driver}`,
        '--constraint', 'node.hostname==hostA',
        'bb', 'sh', '-c',
        // the check is timed inside the container (/proc/uptime, 10 ms steps): it is the application's work
        // (64 MiB read through GlusterFS and hashed), which the local driver's empty volume skips
        's=$(cut -d" " -f1 /proc/uptime); if sha256sum -c /data/blob.sum >/dev/null 2>&1; then f=yes; else f=no; fi; e=$(cut -d" " -f1 /proc/uptime); echo "$f $s $e" > /tmp/found; if [ $f = no ]; then dd if=/dev/urandom of=/data/blob bs=1M count=64 2>/dev/null; sha256sum /data/blob > /data/blob.sum; sync; fi; exec sleep 3600',
      ]);
      const onA = await runningOn(A, svc);
      while ((await A.docker(['exec', onA, 'cat', '/tmp/found'])).code !== 0) await sleep(100);
      while ((await A.docker(['exec', onA, 'test', '-s', '/data/blob.sum'])).code !== 0) await sleep(100);
      const t = performance.now();
      await c.manager.dockerOk(['service', 'update', '--detach', '--constraint-rm', 'node.hostname==hostA', '--constraint-add', 'node.hostname==hostB', svc]);
      const onB = await runningOn(B, svc);
      moves[driver].runningMs.push(performance.now() - t);
      let line = '';
      while (!(line = (await B.docker(['exec', onB, 'cat', '/tmp/found'])).stdout.trim())) await sleep(20);
      moves[driver].ms.push(performance.now() - t);
      const [found = '', from = '0', to = '0'] = line.split(' ');
      moves[driver].found.push(found);
      moves[driver].checkMs.push((Number(to) - Number(from)) * 1000);
      await c.manager.dockerOk(['service', 'rm', svc]);
      for (const h of [A, B]) {
        for (let k = 0; k < 100 && (await h.docker(['volume', 'rm', `${svc}-data`])).code !== 0; k++) await sleep(200);
      }
    }
  }
  emit(`## 1. A Swarm service moved from hostA to hostB (${MOVES} moves each, interleaved)`);
  emit();
  emit('Time from `docker service update --constraint-add node.hostname==hostB` to the task running on hostB and having checked its 64 MiB of data (sha256).');
  emit();
  emit('| driver | median | min | max | found its data |\n|---|---|---|---|---|');
  for (const d of ['ferry', 'local'] as const) {
    emit(`| ${d} | ${s(median(moves[d].ms))} | ${s(Math.min(...moves[d].ms))} | ${s(Math.max(...moves[d].ms))} | ${moves[d].found.every((f) => f === 'yes') ? 'yes' : moves[d].found.every((f) => f === 'no') ? 'no' : moves[d].found.join(',')} (${moves[d].found.filter((f) => f === 'yes').length}/${MOVES}) |`);
  }
  emit(`\nferry/local ratio of medians: ${(median(moves.ferry.ms) / median(moves.local.ms)).toFixed(3)}`);
  emit();
  // The same moves without the application's check of its data: the move itself is what a driver adds.
  const moveOnly = (d: 'ferry' | 'local') => moves[d].ms.map((ms, i) => ms - moves[d].checkMs[i]!);
  emit('The same moves split: the check inside the container (sha256 of its 64 MiB, timed there) and the rest, the move itself (service update → task on hostB started and its check done, minus the check).');
  emit();
  emit('| driver | check inside the container, median | move without the check, median (min–max) | `docker ps` shows it running on hostB, median |\n|---|---|---|---|');
  for (const d of ['ferry', 'local'] as const) {
    const m = moveOnly(d);
    emit(`| ${d} | ${s(median(moves[d].checkMs))} | ${s(median(m))} (${s(Math.min(...m))}–${s(Math.max(...m))}) | ${s(median(moves[d].runningMs))} |`);
  }
  emit(`\nferry/local ratio of the medians of the move without the check: ${(median(moveOnly('ferry')) / median(moveOnly('local'))).toFixed(3)}`);
  emit();
  emit('Every sample (ms, in run order; total / check / running seen):');
  for (const d of ['ferry', 'local'] as const) emit(`- ${d}: ${moves[d].ms.map((ms, i) => `${ms.toFixed(0)} / ${moves[d].checkMs[i]!.toFixed(0)} / ${moves[d].runningMs[i]!.toFixed(0)}`).join(', ')}`);
  emit();

  if (!MOVES_ONLY) await throughputAndListing(A, B, nas);
  emit(`Load average at the end: ${loadAverage()}.`);
} finally {
  progress('tearing down');
  await c?.stop();
}

/** Sections 2 and 3. */
async function throughputAndListing(A: ClusterHost, B: ClusterHost, nas: string): Promise<void> {
  // ---- 2. throughput ----
  progress(`2. throughput, ${REPS} reps each, interleaved`);
  await A.dockerOk(['volume', 'create', '-d', 'ferry', 'tp']);
  const bindDir = join(nas, 'bind-baseline');
  await A.execOk('mkdir', ['-p', bindDir]);
  const targets = { ferry: 'tp:/x', bind: `${bindDir}:/x` } as const;
  const big: Record<keyof typeof targets, number[]> = { ferry: [], bind: [] };
  const small: Record<keyof typeof targets, number[]> = { ferry: [], bind: [] };
  for (let r = 0; r < REPS; r++) {
    for (const k of ['ferry', 'bind'] as const) {
      const b = await A.dockerOk(['run', '--rm', '--network', 'none', '-v', targets[k], 'bb', 'sh', '-c', TIMED('dd if=/dev/zero of=/x/big bs=1M count=1024 conv=fsync 2>/dev/null') + '; rm -f /x/big; sync'], { timeoutMs: 600_000 });
      big[k].push(elapsed(b));
      const sm = await A.dockerOk(['run', '--rm', '--network', 'none', '-v', targets[k], 'bb', 'sh', '-c', TIMED('mkdir /x/small && cd /x/small && for i in $(seq 1 5000); do echo "file $i" > f$i; done && sync') + '; rm -rf /x/small'], { timeoutMs: 600_000 });
      small[k].push(elapsed(sm));
      await sleep(2000);
    }
  }
  const mibs = (ms: number) => 1024 / (ms / 1000);
  const fps = (ms: number) => 5000 / (ms / 1000);
  emit(`## 2. Writes inside a container on hostA, GlusterFS pool (median of ${REPS}, interleaved)`);
  emit();
  emit('| measure | ferry volume (pool nas) | bind mount of the same GlusterFS mount | ferry/bind |\n|---|---|---|---|');
  emit(`| 1 GiB, dd bs=1M conv=fsync | ${mibs(median(big.ferry)).toFixed(0)} MiB/s | ${mibs(median(big.bind)).toFixed(0)} MiB/s | ${(mibs(median(big.ferry)) / mibs(median(big.bind))).toFixed(3)} |`);
  emit(`| 5,000 small files + sync | ${fps(median(small.ferry)).toFixed(0)} files/s | ${fps(median(small.bind)).toFixed(0)} files/s | ${(fps(median(small.ferry)) / fps(median(small.bind))).toFixed(3)} |`);
  emit(`\nSamples (ms): 1 GiB ferry ${big.ferry.map(Math.round).join(', ')}; bind ${big.bind.map(Math.round).join(', ')}; small ferry ${small.ferry.map(Math.round).join(', ')}; bind ${small.bind.map(Math.round).join(', ')}`);
  emit();

  // ---- 3. docker volume ls ----
  progress(`3. ${MANY} volumes in the shared pool created through hostA, listed on hostB; ${MANY} local volumes on hostB`);
  const pa = pluginClient(A.ferryd!.pluginSocket);
  for (let k = 0; k < MANY; k += 50) {
    const res = await Promise.all(Array.from({ length: 50 }, (_, j) => pa.call('Create', { Name: `many-${k + j}` })));
    for (const r of res) if (r.Err) throw new Error(String(r.Err));
  }
  pa.close();
  const lsTimes = async (h: ClusterHost, filter: string) => {
    const t: number[] = [];
    const first = performance.now();
    const n = (await h.dockerOk(['volume', 'ls', '-q', '--filter', filter])).trim().split('\n').length;
    const firstMs = performance.now() - first;
    for (let i = 0; i < 10; i++) {
      const x = performance.now();
      await h.dockerOk(['volume', 'ls']);
      t.push(performance.now() - x);
    }
    return { n, firstMs, med: median(t) };
  };
  const shared = await lsTimes(B, 'driver=ferry');
  for (let k = 0; k < MANY; k += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => B.dockerOk(['volume', 'create', `local-${k + j}`])));
  // hostB now has both kinds: time ferry-only and local-only listings through the engine API filter
  const both = await lsTimes(B, 'driver=local');
  emit(`## 3. \`docker volume ls\` on hostB with ${MANY} volumes in the shared pool (created through hostA)`);
  emit();
  emit(`| hostB's engine holds | first \`docker volume ls\` (hostB's ferryd learns the volumes) | \`docker volume ls\`, median of 10 |\n|---|---|---|`);
  emit(`| ${shared.n} ferry volumes of the shared pool, none created on hostB | ${s(shared.firstMs)} | ${shared.med.toFixed(0)} ms |`);
  emit(`| the same plus ${both.n} \`local\` volumes | | ${both.med.toFixed(0)} ms |`);
  emit(`\nThe ferry volumes cost ${(shared.med / (both.med - shared.med)).toFixed(2)}x what as many local volumes add to the listing (${shared.med.toFixed(0)} ms vs ${(both.med - shared.med).toFixed(0)} ms).`);
  emit();
}
