/**
 * The managed plugin's config.json (Docker's plugin config, version 1; docs/managed-plugin.md explains every
 * setting). Rules kept here on purpose:
 * - every settable value has a working default: an empty `args` list, env values that mean "not set"
 *   when empty (ferryd ignores empty FERRY_* values), so `docker plugin enable` works without any `set`;
 * - the mounts' host sources exist on every Docker host: Docker does NOT create a missing bind source
 *   (`docker plugin enable` then fails: "error mounting ... no such file or directory"), so the state mount
 *   is the host's /var/lib (ferryd makes /var/lib/ferry in it), the others /var/run and /mnt;
 * - Mountpoints answered to Docker lie under propagatedMount (FERRY_MOUNT_ROOT): ferryd bind-mounts a
 *   volume's data there while it is mounted, Docker sees it at .../propagated-mount/NAME on the host.
 */
export const PLUGIN_MOUNT_ROOT = '/mnt/volumes';
/** The host's /var/lib is the plugin's /host/var/lib: Docker refuses to enable a plugin whose bind source is missing, and /var/lib is always there. */
export const PLUGIN_DATA_DIR = '/host/var/lib/ferry';
export const PLUGIN_API_SOCKET = '/host/var/lib/ferry/run/api.sock';

export function pluginConfig(version: string): Record<string, unknown> {
  const env = (name: string, description: string, value: string, settable = true) => ({ name, description, value, ...(settable ? { settable: ['value'] } : {}) });
  return {
    description: `Ferry ${version}: Docker volumes that survive containers, hosts and disks (trash, snapshots, backups, shared pools)`,
    documentation: 'docs/managed-plugin.md in the Ferry source',
    // bin/ferry, not dist/src/main.js: it gives ferryd its 32 libuv threads before Node makes the pool
    entrypoint: ['/usr/bin/node', '/ferry/bin/ferry', 'daemon'],
    workdir: '/ferry',
    interface: { types: ['docker.volumedriver/1.0'], socket: 'ferry.sock' },
    network: { type: 'host' },
    ipchost: false,
    pidhost: false,
    propagatedMount: PLUGIN_MOUNT_ROOT,
    linux: {
      capabilities: ['CAP_SYS_ADMIN', 'CAP_MKNOD', 'CAP_CHOWN', 'CAP_FOWNER', 'CAP_DAC_OVERRIDE', 'CAP_KILL'],
      allowAllDevices: false,
      // FUSE-backed shared pools (GlusterFS); settable so a host without /dev/fuse can point it elsewhere
      devices: [{ name: 'fuse', description: 'the FUSE device, for GlusterFS pools', path: '/dev/fuse', settable: ['path'] }],
    },
    mounts: [
      {
        name: 'state',
        description: "the host's /var/lib: ferryd's data dir is its ferry/ (catalog, local pool, trash, snapshots, tokens, the API socket), kept across upgrades and plugin removal",
        source: '/var/lib',
        destination: '/host/var/lib',
        type: 'bind',
        // rslave: what the host mounts or unmounts there later is seen (and never pinned) in the plugin
        options: ['rbind', 'rslave', 'rw'],
        settable: ['source'],
      },
      {
        name: 'host-mnt',
        description: "the host's /mnt, as /host/mnt: shares the host mounts (NFS, GlusterFS) for pools with path: /host/mnt/...",
        source: '/mnt',
        destination: '/host/mnt',
        type: 'bind',
        options: ['rbind', 'rslave', 'rw'],
        settable: ['source'],
      },
      {
        name: 'host-run',
        description: "the host's /run, for Docker's API socket (which containers use a volume; restarting containers Docker left stopped)",
        source: '/var/run',
        destination: '/host-run',
        type: 'bind',
        options: ['bind', 'rw'],
        settable: ['source'],
      },
    ],
    env: [
      env('FERRY_MANAGED_PLUGIN', 'set by the plugin: ferryd runs as a managed plugin', '1', false),
      env('FERRY_DATA_DIR', 'the data dir inside the plugin (the state mount)', PLUGIN_DATA_DIR, false),
      env('FERRY_PLUGIN_SOCKET', 'the plugin socket Docker connects to', '/run/docker/plugins/ferry.sock', false),
      env('FERRY_API_SOCKET', 'the control API socket, in the state mount: on the host STATE/run/api.sock (`ferry --plugin`)', PLUGIN_API_SOCKET, false),
      env('FERRY_MOUNT_ROOT', 'where volumes are bind-mounted for Docker (the propagated mount)', PLUGIN_MOUNT_ROOT, false),
      env('FERRY_CONFIG', 'a config file inside the plugin, e.g. /host/var/lib/ferry/other.yaml (empty: /host/var/lib/ferry/ferry.yaml, i.e. /var/lib/ferry/ferry.yaml on the host, when it exists)', ''),
      env('FERRY_DOCKER_HOST', "Docker's API as seen inside the plugin (none: do not ask Docker)", 'unix:///host-run/docker.sock'),
      env('FERRY_API_LISTEN', 'also serve the control API over TCP at HOST:PORT (empty: no)', ''),
      env('FERRY_NODE', "this node's name (empty: the host name)", ''),
      env('FERRY_TRASH_RETENTION', 'how long removed volumes stay in the trash (empty: 24h, or the config file)', ''),
      env('FERRY_LOG_LEVEL', 'fatal, error, warn, info, debug, trace (empty: info, or the config file)', ''),
    ],
    args: { name: 'args', description: 'more `ferry daemon` flags, e.g. --trash-retention=7d', settable: ['value'], value: [] },
  };
}
