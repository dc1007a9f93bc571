/** ferryd's default paths. */
import { hostname } from 'node:os';

/**
 * ferryd's built-in settings. Kept free of heavy imports: the CLI shows them in `--help` and must start fast.
 * config.ts checks them against the config file's schema.
 */
export const BUILTIN_DEFAULTS = {
  dataDir: '/var/lib/ferry',
  pluginSocket: '/run/docker/plugins/ferry.sock',
  apiSocket: '/run/ferry/api.sock',
  node: hostname(),
  dockerHost: 'unix:///var/run/docker.sock',
  trashRetention: '24h',
  logLevel: 'info' as const,
  snapshotSchedules: [] as Array<{ label: string; schedule: string; keep?: string }>,
  pools: {},
  defaultPool: 'local',
  heartbeatInterval: '5s',
  nodeTimeout: '30s',
  restartContainers: true,
};
