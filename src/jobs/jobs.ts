/** Long operations as jobs: progress clients poll, results and errors, a recent history kept across restarts. */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { FerryError, errorMessage } from '../util/errors.js';
import { readJson, writeJsonAtomic } from '../util/atomic.js';
import type { Quarantine } from '../util/quarantine.js';

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
  /** The backup target it reads or writes (its configured name, or the URL's location). */
  target?: string;
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
 * are kept for a while so that a client that polls late still learns how it ended. With a file, the list
 * survives a restart of ferryd: it is written (atomically) when a job starts and when it ends, and a job
 * that was running when ferryd stopped is listed as failed (`interrupted`) after the restart.
 */
export class JobRegistry {
  private readonly jobs = new Map<string, JobInfo>();
  private readonly done = new Map<string, Promise<void>>();
  private saving: Promise<void> = Promise.resolve();
  /** Told of every job once it has ended, either way (for /metrics). Must not throw. */
  onFinished?: (job: JobInfo) => void;

  constructor(
    private readonly log: Logger,
    private readonly keepFinished = 200,
    private readonly persist?: { file: string; quarantine?: Quarantine },
  ) {}

  /** Read the jobs of earlier runs (a corrupt file is moved aside with a warning, and the list starts empty). */
  async load(): Promise<void> {
    if (!this.persist) return;
    let saved: { jobs?: JobInfo[] } | undefined;
    try {
      saved = await readJson<{ jobs?: JobInfo[] }>(this.persist.file);
      if (saved !== undefined && !Array.isArray(saved.jobs)) throw new Error('no jobs list');
    } catch (err) {
      await this.persist.quarantine?.moveAside(this.persist.file, err, 'the list of recent jobs starts empty');
      return;
    }
    const now = new Date().toISOString();
    for (const j of saved?.jobs ?? []) {
      if (typeof j?.id !== 'string' || typeof j.kind !== 'string' || typeof j.startedAt !== 'string') continue;
      const job: JobInfo =
        j.state === 'running'
          ? { ...j, state: 'failed', finishedAt: now, error: { code: 'interrupted', message: 'ferryd stopped while this job ran; start it again' } }
          : j;
      this.jobs.set(job.id, job);
    }
    this.trim();
    if ((saved?.jobs ?? []).some((j) => j?.state === 'running')) this.save();
  }

  start<T>(kind: string, volume: string | undefined, work: (report: ProgressReporter) => Promise<T>, opts: { target?: string } = {}): JobInfo {
    const job: JobInfo = {
      id: randomBytes(6).toString('hex'),
      kind,
      ...(volume ? { volume } : {}),
      ...(opts.target ? { target: opts.target } : {}),
      state: 'running',
      startedAt: new Date().toISOString(),
      progress: { bytesDone: 0, filesDone: 0 },
    };
    this.jobs.set(job.id, job);
    this.save();
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
          this.save();
        },
        (err: unknown) => {
          job.state = 'failed';
          job.error = { code: err instanceof FerryError ? err.code : 'internal', message: errorMessage(err) };
          job.finishedAt = new Date().toISOString();
          this.log.error({ job: job.id, kind, volume, err: errorMessage(err) }, 'job failed');
          this.onFinished?.(job);
          this.trim();
          this.save();
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

  /** Resolves when the list as it is now is on disk (a job acknowledged after this is found after a crash). */
  async saved(): Promise<void> {
    await this.saving;
  }

  /** Resolves when the job has finished (either way). */
  async wait(id: string): Promise<JobInfo> {
    await this.done.get(id);
    return this.get(id);
  }

  /** Wait for every running job (at shutdown), and for the list to be on disk. */
  async drain(): Promise<void> {
    await Promise.all(this.done.values());
    await this.saving;
  }

  /** Write the list (queued: one write at a time, the last one carries every change); errors are logged. */
  private save(): void {
    const file = this.persist?.file;
    if (!file) return;
    this.saving = this.saving
      .then(() => writeJsonAtomic(file, { jobs: this.list() }))
      .catch((err) => this.log.warn({ file, err: errorMessage(err) }, 'could not write the list of recent jobs'));
  }

  private trim(): void {
    const finished = this.list().filter((j) => j.state !== 'running');
    for (const j of finished.slice(this.keepFinished)) {
      this.jobs.delete(j.id);
      this.done.delete(j.id);
    }
  }
}
