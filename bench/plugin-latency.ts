/**
 * Plugin-protocol latency of Mount+Unmount (one pair = one sample) with 1 and 64 concurrent clients,
 * against a real ferryd on a temporary data dir (on the disk this machine writes to: every Mount and
 * Unmount is fsynced before it is acknowledged). Also: ferryd start-up time with 1,000 volumes.
 *   node dist/bench/plugin-latency.js [pairsPerClient=200]
 */
import { startFerryd } from '../test/helpers/ferryd.js';
import { percentile, pluginClient, fmtMs } from './lib.js';

const pairsPerClient = Number(process.argv[2] ?? 200);

/**
 * `closed`: every client sends its next pair as soon as the last one is answered (saturation).
 * `burst`: all clients send one pair at the same instant, then wait for all (64 containers started at once).
 */
async function storm(socket: string, clients: number, sameVolume: boolean, mode: 'closed' | 'burst'): Promise<{ samples: number[]; perSecond: number }> {
  const c = pluginClient(socket);
  const samples: number[] = [];
  const pair = async (k: number, i: number) => {
    const name = sameVolume ? 'lat-shared' : `lat-${k}`;
    const t = performance.now();
    const id = `c${k}-${i}`;
    const m = await c.call('Mount', { Name: name, ID: id });
    const u = await c.call('Unmount', { Name: name, ID: id });
    if (m.Err || u.Err) throw new Error(String(m.Err || u.Err));
    samples.push(performance.now() - t);
  };
  const t0 = performance.now();
  if (mode === 'closed') {
    await Promise.all(Array.from({ length: clients }, async (_, k) => {
      for (let i = 0; i < pairsPerClient; i++) await pair(k, i);
    }));
  } else {
    for (let i = 0; i < pairsPerClient; i++) await Promise.all(Array.from({ length: clients }, (_, k) => pair(k, i)));
  }
  const perSecond = (samples.length / (performance.now() - t0)) * 1000;
  c.close();
  return { samples: samples.sort((a, b) => a - b), perSecond };
}

const f = await startFerryd({ logLevel: 'info' });
try {
  const c = pluginClient(f.pluginSocket);
  await c.call('Create', { Name: 'lat-shared' });
  for (let k = 0; k < 64; k++) await c.call('Create', { Name: `lat-${k}` });
  c.close();
  await storm(f.pluginSocket, 4, false, 'closed'); // warm-up
  const rows: string[] = [];
  for (const [clients, same, mode] of [[1, false, 'closed'], [64, false, 'burst'], [64, true, 'burst'], [64, false, 'closed'], [64, true, 'closed']] as const) {
    const { samples: s, perSecond } = await storm(f.pluginSocket, clients, same, mode);
    rows.push(`| ${clients} | ${mode} | ${same ? 'one shared' : 'one each'} | ${s.length} | ${fmtMs(percentile(s, 50))} | ${fmtMs(percentile(s, 99))} | ${fmtMs(s[s.length - 1]!)} | ${Math.round(perSecond)} |`);
  }
  console.log('Mount+Unmount pair latency (each call on disk before the answer)\n');
  console.log('| clients | load | volumes | pairs | p50 | p99 | max | pairs/s |\n|---|---|---|---|---|---|---|---|');
  console.log(rows.join('\n'));

  // start-up with 1,000 volumes in the catalog
  const c2 = pluginClient(f.pluginSocket);
  const batch = 50;
  for (let k = 0; k < 1000; k += batch) await Promise.all(Array.from({ length: batch }, (_, j) => c2.call('Create', { Name: `many-${k + j}` })));
  c2.close();
  const starts: number[] = [];
  for (let i = 0; i < 5; i++) {
    await f.stop();
    const t = performance.now();
    await f.start();
    starts.push(performance.now() - t);
  }
  const logs = await f.logs();
  const internal = [...logs.matchAll(/"volumes":(\d+),"startupMs":(\d+)/g)].slice(-5).map((m) => Number(m[2]));
  starts.sort((a, b) => a - b);
  console.log(`\nferryd start-up with ${1000 + 65} volumes: median ${fmtMs(starts[2]!)} from spawn to ready (process start included), ` + `median ${internal.sort((a, b) => a - b)[2]} ms inside ferryd (catalog load, recovery, sockets)`);
} finally {
  await f.destroy();
}
