/** Sockets handed over by systemd (socket activation, as sd_listen_fds(3) reads them): which inherited fd serves what. */

/** File descriptors ferryd inherited, by the job it gives them. */
export interface InheritedSockets {
  /** The plugin socket Docker connects to (`FileDescriptorName=plugin`, or the only socket passed). */
  plugin?: number;
  /** The control API's unix socket (`FileDescriptorName=api`). */
  api?: number;
}

/** systemd passes sockets from fd 3 on (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

/**
 * Read LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES. They count only when LISTEN_PID is this process (a
 * variable inherited from a parent that was activated means nothing here). The variables are removed
 * from `env` so that the programs ferryd runs (cp, btrfs, mount) never think they were activated.
 * Throws on a set of sockets ferryd cannot place, naming what it got.
 */
export function inheritedSockets(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): InheritedSockets {
  const listenPid = env.LISTEN_PID;
  const count = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenPid === undefined || count === undefined || Number(listenPid) !== pid) return {};
  const n = Number(count);
  if (!Number.isInteger(n) || n < 1) return {};
  const named = (names ?? '').split(':');
  const out: InheritedSockets = {};
  for (let i = 0; i < n; i++) {
    const name = named[i] ?? '';
    const fd = FIRST_FD + i;
    if (name === 'api') out.api = fd;
    else if (name === 'plugin' || n === 1) out.plugin = fd;
    else {
      throw new Error(
        `systemd passed ${n} sockets (names: ${names ?? 'none'}); ferryd takes one named "plugin" (FileDescriptorName=plugin) and optionally one named "api"`,
      );
    }
  }
  return out;
}
