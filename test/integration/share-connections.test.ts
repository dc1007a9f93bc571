import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { isRoot, skipUnless } from '../helpers/prereq.js';
import { closeTcpConnections, decodeAddress, holdNetns, parseTcpTable, processTree, tcpConnectionsOf } from '../../src/fence/share-connections.js';

/**
 * What the fencing agent does to a cut-off FUSE server's connections (src/fence/share-connections.ts): a
 * process (the child of the one asked about) in a network namespace of its own (as a host's glusterfs client is, seen from a test's agent) has
 * a TCP connection whose peer does not read, so what it wrote waits in its send queue, as a write waits when
 * the link is down. Closed from outside (nsenter + ss -K), the queue is discarded: the peer, reading again,
 * never receives it.
 */
const skip = skipUnless(isRoot() ? [] : ['root (uid 0) for unshare and ss -K'], 'closing a process\'s TCP connections');

// In its own network namespace: a server that does not read yet and a client that writes 8 MiB to it.
// Prints "ready PORT", then on "read\n" the server reads until the connection ends and prints "got N".
const PEER = `
const net = require('node:net');
const rl = require('node:readline').createInterface({ input: process.stdin });
let server;
const srv = net.createServer((s) => { server = s; s.pause(); });
srv.listen(0, '127.0.0.1', () => {
  const c = net.connect(srv.address().port, '127.0.0.1', () => {
    c.write(Buffer.alloc(8 << 20, 97));
    setTimeout(() => console.log('ready ' + srv.address().port), 300);
  });
  c.on('error', (e) => console.log('client ' + e.code));
});
rl.on('line', (l) => {
  if (l !== 'read') return;
  let got = 0;
  server.on('data', (d) => (got += d.length));
  const done = (why) => { console.log('got ' + got + ' ' + why); process.exit(0); };
  server.on('end', () => done('end'));
  server.on('error', (e) => done(e.code));
  server.resume();
  setTimeout(() => done('timeout'), 5000);
});
`;

describe('closing a FUSE server\'s TCP connections (the fencing agent)', { skip }, () => {
  let peer: ChildProcess | undefined;
  after(() => {
    for (const p of peer?.pid ? processTree(peer.pid).reverse() : []) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });

  it('reads /proc/net/tcp addresses, IPv4 and IPv6', () => {
    assert.equal(decodeAddress('0100007F:0050'), '127.0.0.1:80');
    assert.equal(decodeAddress('FE01A8C0:E0C5'), '192.168.1.254:57541');
    assert.equal(decodeAddress('00000000000000000000000001000000:1F90'), '[::1]:8080');
    assert.equal(decodeAddress('0000000000000000FFFF00000100007F:0016'), '[::ffff:7f00:1]:22');
    assert.equal(decodeAddress('000080FE00000000FF005002030405FE:01BB'), '[fe80::250:ff:fe05:403]:443');
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0',
      '   1: 0100007F:C350 0100007F:9C40 01 0000010D:00000000 01:00000014 00000003     0        0 222 1 0 20 4 30 10 -1',
      '   3: 0100007F:C352 0100007F:9C40 04 000000EC:00000000 04:00000032 00000000     0        2 444 1 0 20 4 30 10 -1',
      '   2: 0100007F:C351 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1',
      '   4: 0100007F:C353 0100007F:9C40 02 00000001:00000000 01:00000032 00000002     0        0 555 1 0 20 4 30 10 -1',
      '   5: 0100007F:C354 0100007F:9C41 04 00000020:00000000 01:00000032 00000001     0        0 0 1 0 20 4 30 10 -1',
      '   6: 0100007F:C355 0100007F:0801 01 00000040:00000000 01:00000032 00000001     0        0 0 1 0 20 4 30 10 -1',
      '   7: 0100007F:C356 0200007F:9C40 04 00000020:00000000 01:00000032 00000001     0        0 0 1 0 20 4 30 10 -1',
    ].join('\n');
    // the listening socket (st 0A) is not a connection; another process's socket (333) is not asked for
    // retries: retransmission timeouts (3 for 222) plus window probes (2 for 444, in FIN-WAIT-1); a SYN_SENT
    // socket's queue is its SYN, no data (555); an orphan (inode 0) closing to an accepted host is included (5),
    // a kernel socket (inode 0, established: an NFS client's) is not (6), nor an orphan to another host (7)
    assert.deepEqual(parseTcpTable(table, new Set(['111', '222', '444', '555']), (remote) => remote.startsWith('127.0.0.1:')), [
      { local: '127.0.0.1:50000', remote: '127.0.0.1:40000', sendQueue: 269, retries: 3 },
      { local: '127.0.0.1:50002', remote: '127.0.0.1:40000', sendQueue: 236, retries: 2 },
      { local: '127.0.0.1:50003', remote: '127.0.0.1:40000', sendQueue: 0, retries: 2 },
      { local: '127.0.0.1:50004', remote: '127.0.0.1:40001', sendQueue: 32, retries: 1, orphan: true },
    ]);
  });

  it('closes the connections of a process in another network namespace and discards what they queued', async () => {
    // node runs as a child of the shell: the connection is a descendant's, as an sshfs mount's is its ssh child's
    peer = spawn('unshare', ['--net', 'sh', '-c', `ip link set lo up && ${process.execPath} -e "$PEER"; exit 0`], { env: { ...process.env, PEER }, stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: peer.stdout! })[Symbol.asyncIterator]();
    const next = async () => String((await lines.next()).value ?? '');
    const ready = await next();
    const port = /^ready (\d+)$/.exec(ready)?.[1];
    assert.ok(port, `the peer started: ${ready}`);

    const conns = tcpConnectionsOf(peer.pid!);
    const toServer = conns.filter((c) => c.remote === `127.0.0.1:${port}`);
    assert.equal(toServer.length, 1, `the client's connection among ${JSON.stringify(conns)}`);
    assert.ok(toServer[0]!.sendQueue > 0, `bytes wait in its send queue: ${JSON.stringify(toServer[0])}`);

    const ns = holdNetns(peer.pid!);
    try {
      assert.equal(ns.own, false, 'the peer is in a network namespace of its own');
      assert.equal(closeTcpConnections(ns, toServer), 1);
    } finally {
      ns.close();
    }
    assert.equal(await next(), 'client ECONNABORTED', 'the client learns that its connection is gone');
    assert.deepEqual(tcpConnectionsOf(peer.pid!).filter((c) => c.remote === `127.0.0.1:${port}`), [], 'nothing left of it');
    peer.stdin!.write('read\n');
    const got = /^got (\d+) (\S+)$/.exec(await next());
    assert.ok(got, 'the server read what reached it');
    assert.ok(Number(got[1]) < 8 << 20, `the server did not receive the queued bytes: got ${got[1]} of ${8 << 20} (${got[2]})`);
  });
});
