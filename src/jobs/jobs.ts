import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { FerryError, errorMessage } from '../util/errors.js';

/** How far a job got; a total is absent until it is known (a backup's scan), never one that grows with the count. */
export interface JobProgress {
  bytesDone: number;
  bytesTotal?: number;
  filesDone: number;
  filesTotal?: number;
  /** Backups: bytes written to the target so far (only what the repository lacked). */
  bytesUploaded?: number;
  /** What it is doing now: a backup goes through snapshot, scan (totals not known yet), upload, finish; a restore is restore. */
  phase?: string;
}

export type JobState = 'running' | 'succeeded' | 'failed';

export interface JobInfo {
  id: string;
  kind: string;
  volume?: string;
  state: JobState;
  startedAt: string;
  finishedAt?: string;
  progress: JobProgress;
  /** What the job produced (for example a backup's URL), once it succeeded. */
  result?: unknown;
  error?: { code: string; message: string };
}

export type ProgressReporter = (p: Partial<JobProgress>) => void;

/**
 * Long operations (backups, restores) run as jobs: started by an API call that answers at once with the
 * job, followed by polling `GET /v1/jobs/ID` (the CLI's progress bar, the UI's jobs view). Finished jobs
 * are kept for a while so that a client that polls late still learns how it ended.
 */
export class JobRegistry {
  private readonly jobs = new Map<string, JobInfo>();
  private readonly done = new Map<string, Promise<void>>();
  /** Told of every job once it has ended, either way (for /metrics). Must not throw. */
  onFinished?: (job: JobInfo) => void;

  constructor(
    private readonly log: Logger,
    private readonly keepFinished = 200,
  ) {}

  start<T>(kind: string, volume: string | undefined, work: (report: ProgressReporter) => Promise<T>): JobInfo {
    const job: JobInfo = {
      id: randomBytes(6).toString('hex'),
      kind,
      ...(volume ? { volume } : {}),
      state: 'running',
      startedAt: new Date().toISOString(),
      progress: { bytesDone: 0, filesDone: 0 },
    };
    this.jobs.set(job.id, job);
    const report: ProgressReporter = (p) => Object.assign(job.progress, p);
    this.log.info({ job: job.id, kind, volume }, 'job started');
    this.done.set(
      job.id,
      work(report).then(
        (result) => {
          job.state = 'succeeded';
          job.result = result;
          job.finishedAt = new Date().toISOString();
          this.log.info({ job: job.id, kind, volume, ms: Date.parse(job.finishedAt) - Date.parse(job.startedAt) }, 'job succeeded');
          this.onFinished?.(job);
          this.trim();
        },
        (err: unknown) => {
          job.state = 'failed';
          job.error = { code: err instanceof FerryError ? err.code : 'internal', message: errorMessage(err) };
          job.finishedAt = new Date().toISOString();
          this.log.error({ job: job.id, kind, volume, err: errorMessage(err) }, 'job failed');
          this.onFinished?.(job);
          this.trim();
        },
      ),
    );
    return job;
  }

  get(id: string): JobInfo {
    const j = this.jobs.get(id);
    if (!j) throw new FerryError('not_found', `no job ${id}; \`ferry job ls\` lists the recent ones`);
    return j;
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  }

  /** Resolves when the job has finished (either way). */
  async wait(id: string): Promise<JobInfo> {
    await this.done.get(id);
    return this.get(id);
  }

  /** Wait for every running job (at shutdown). */
  async drain(): Promise<void> {
    await Promise.all(this.done.values());
  }

  private trim(): void {
    const finished = this.list().filter((j) => j.state !== 'running');
    for (const j of finished.slice(this.keepFinished)) {
      this.jobs.delete(j.id);
      this.done.delete(j.id);
    }
  }
}
