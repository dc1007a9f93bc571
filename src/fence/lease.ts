/**
 * The local fence lease: what ferryd tells the fencing agent (src/fence/agent.ts) at every heartbeat, through
 * a file in DATA_DIR on the local disk (never on a share). For each shared pool: the time stamped in the
 * last heartbeat that reached the share, and the fence deadline (that time + fenceDeadline) by which this
 * node's writers of that pool's rwo volumes must be dead if no newer heartbeat reaches the share. Other
 * nodes take over only nodeTimeout after that heartbeat, and nodeTimeout > fenceDeadline (config.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/atomic.js';
import { makeDirs } from '../util/make-dirs.js';

export interface HeldVolume {
  pool: string;
  volume: string;
  /** The volume's data directory as this node's ferryd sees it (on the share). */
  path: string;
  /** The share's device (major:minor, from mountinfo) and the directory's path inside that filesystem. */
  dev?: string;
  fsRoot?: string;
}

export interface PoolLease {
  /** The lastSeen written into the last heartbeat that reached the share (ms since the epoch). */
  renewedAt: number;
  /** renewedAt + fenceDeadline: no writer of this pool's rwo volumes runs here after it, unless renewed. */
  deadline: number;
}

export interface FenceLease {
  node: string;
  pid: number;
  fenceMs: number;
  heartbeatMs: number;
  writtenAt: number;
  pools: Record<string, PoolLease>;
  held: HeldVolume[];
}

export const fenceDir = (dataDir: string) => join(dataDir, 'fence');
export const leasePath = (dataDir: string) => join(fenceDir(dataDir), 'lease.json');
export const fenceLogPath = (dataDir: string) => join(fenceDir(dataDir), 'fenced.jsonl');
export const agentBeatPath = (dataDir: string) => join(fenceDir(dataDir), 'agent.json');

/** What the fencing agent writes every second, so that ferryd can tell whether one watches its lease. */
export interface AgentBeat {
  pid: number;
  startedAt: string;
  /** When the agent last wrote this file (ms since the epoch). */
  seenAt: number;
}

/** An agent that has not written its beat for this long is taken for gone (it writes every AGENT_BEAT_MS). */
export const AGENT_BEAT_MS = 1000;
export const AGENT_GONE_MS = 5000;

export async function writeAgentBeat(dataDir: string, beat: AgentBeat): Promise<void> {
  await makeDirs(fenceDir(dataDir));
  await writeJsonAtomic(agentBeatPath(dataDir), beat);
}

export async function readAgentBeat(dataDir: string): Promise<AgentBeat | undefined> {
  try {
    return JSON.parse(await readFile(agentBeatPath(dataDir), 'utf8')) as AgentBeat;
  } catch {
    return undefined;
  }
}

export async function writeLease(dataDir: string, lease: FenceLease): Promise<void> {
  await makeDirs(fenceDir(dataDir));
  await writeJsonAtomic(leasePath(dataDir), lease);
}

export async function readLease(dataDir: string): Promise<FenceLease | undefined> {
  try {
    return JSON.parse(await readFile(leasePath(dataDir), 'utf8')) as FenceLease;
  } catch {
    return undefined; // none yet, or being replaced (atomic rename: the next read sees the new one)
  }
}
