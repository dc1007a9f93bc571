// The CLI's one progress display of a job (backup, restore, prune, verify, snapshot): a pure renderer (state + width -> line) and the follower that draws it.
import type { Job, JobProgress, Snapshot } from '../wire/types.js';
import { ApiError, type FerryClient } from '../wire/client.js';
import { FerryError } from '../util/errors.js';
import { bytes, duration, ellipsis, scaled } from './format.js';

/** What the renderer needs of a job: its progress as ferryd reports it, plus the rate the follower measured. */
export interface ProgressState {
  kind: string;
  volume?: string;
  state: Job['state'];
  progress: JobProgress;
  /** Bytes per second over the last seconds; undefined while not measured (first second, nothing moving). */
  rate?: number;
}

/** ferryd's phase names, as a person reads them (a backup: snapshot, scan, upload, finish). */
const PHASES: Record<string, string> = { files: 'upload', 'reading every pack': 'read', 'checking structure': 'check' };
export const phaseName = (p: JobProgress): string => (p.phase ? (PHASES[p.phase] ?? p.phase) : 'start');

/** What a job counts as its "files": verify reads packs. */
const unitOf = (kind: string) => (kind === 'verify' ? 'packs' : 'files');

/** A count, size or rate as a number, or undefined when it is not one (NaN, Infinity, negative, absent). */
const num = (n: number | undefined): number | undefined => (n !== undefined && Number.isFinite(n) && n >= 0 ? n : undefined);

/** "42%": never 100 % while the job runs (the upload of the last packs follows the read). */
export function percent(p: JobProgress, running = true): string | undefined {
  const done = num(p.bytesDone);
  const total = num(p.bytesTotal);
  if (done === undefined || !total) return undefined;
  const pct = Math.floor((100 * Math.min(done, total)) / total);
  return `${running ? Math.min(pct, 99) : pct}%`;
}

/** "120 of 284 MiB", "950 KiB of 1.2 GiB", or "120 MiB" while the total is unknown. */
export function bytesOf(done: number, total?: number): string {
  const t = num(total);
  if (t === undefined) return bytes(done);
  const d = scaled(done);
  const whole = scaled(t);
  return d.unit === whole.unit ? `${d.value} of ${bytes(t)}` : `${bytes(done)} of ${bytes(t)}`;
}

/** "1204/3000 files", "1204 files" while the total is unknown. */
function filesOf(kind: string, done: number, total?: number): string {
  const t = num(total);
  return `${done}${t !== undefined ? `/${t}` : ''} ${unitOf(kind)}`;
}

/** Seconds left at the measured rate, or undefined when that is not known (no total, no rate, absurd). */
export function etaSeconds(p: JobProgress, rate?: number): number | undefined {
  const done = num(p.bytesDone);
  const total = num(p.bytesTotal);
  const r = num(rate);
  if (done === undefined || !total || !r || done >= total) return undefined;
  const secs = Math.ceil((total - done) / r);
  return Number.isFinite(secs) && secs < 100 * 86_400 ? secs : undefined;
}

interface Field {
  text: string;
  /** 1 is kept longest; the highest number goes first when the line is too long. */
  keep: number;
  /**
   * The width the field may take while the job runs (at least its text): the layout is chosen with these,
   * so that fields and the bar do not come and go as the figures change, and a rate or ETA not measured
   * yet (empty text) has its place kept.
   */
  room: number;
}

/** The widest a rate ("1023 MiB/s") or an ETA ("ETA 59m59s", "ETA 23h59m") is written. */
const RATE_ROOM = 10;
const ETA_ROOM = 10;

/** The fields of a running job after its name and phase, in the order they are shown. */
function fields(s: ProgressState): { head: string; phase: string; rest: Field[]; bar?: number } {
  const p = s.progress;
  const done = num(p.bytesDone) ?? 0;
  const total = num(p.bytesTotal);
  const filesTotal = num(p.filesTotal);
  const phase = phaseName(p);
  const rest: Field[] = [];
  const add = (text: string, keep: number, room = 0) => (text || room) && rest.push({ text, keep, room: Math.max(room, text.length) });
  const moving = phase !== 'snapshot' && phase !== 'start';
  if (total) add(percent(p)!, 2, 3);
  if (moving && (done > 0 || total)) add(bytesOf(done, total), 3, total ? `1023 of ${bytes(total)}`.length : 0);
  if (moving && (p.filesDone > 0 || filesTotal)) add(filesOf(s.kind, num(p.filesDone) ?? 0, filesTotal), 6, filesTotal !== undefined ? filesOf(s.kind, filesTotal, filesTotal).length : 0);
  // (nothing sent yet is left blank: a log line "0 B sent" read as if the backup wrote nothing)
  if (phase === 'finish' && num(p.bytesUploaded) !== undefined) add(p.bytesUploaded ? `${bytes(p.bytesUploaded)} sent` : '', 4, '1023 MiB sent'.length);
  const r = num(s.rate);
  if (moving) add(r ? `${bytes(r)}/s` : '', 5, RATE_ROOM);
  const eta = etaSeconds(p, s.rate);
  if (moving && total && phase !== 'finish') add(eta !== undefined ? `ETA ${duration(eta * 1000)}` : '', 4, ETA_ROOM);
  return { head: ellipsis(`${s.kind}${s.volume ? ' ' + s.volume : ''}`, 32), phase, rest, ...(total ? { bar: Math.min(1, done / total) } : {}) };
}

const SEP = '  ';
const BAR_MIN = 10;
const BAR_MAX = 40;

/**
 * One line for a terminal of `width` columns: at most width − 1 characters (a line that fills the last
 * column wraps on some terminals). The fields a person needs most (phase, percent, bytes, ETA, rate) stay;
 * the job's name, the bar and the files go first, in that order, when the line is too long (at 80 columns
 * the name goes: it is the command just typed). The bar takes the room that is left, 10 to 40 characters.
 */
export function renderProgress(s: ProgressState, width: number): string {
  const max = Math.max(1, Math.floor(Number.isFinite(width) ? width : 80) - 1);
  const f = fields(s);
  const BAR = '\0bar';
  const list: Field[] = [
    { text: f.head, keep: 8, room: f.head.length },
    { text: f.phase, keep: 1, room: f.phase.length },
    ...(f.bar !== undefined ? [{ text: BAR, keep: 7, room: BAR_MIN + 2 }] : []),
    ...f.rest,
  ];
  const len = (l: Field[]) => l.reduce((a, x) => a + x.room, 0) + SEP.length * Math.max(0, l.length - 1);
  while (list.length > 1 && len(list) > max) {
    const worst = list.reduce((w, x) => (x.keep > w.keep ? x : w));
    list.splice(list.indexOf(worst), 1);
  }
  const bar = list.find((x) => x.text === BAR);
  if (bar) {
    const w = Math.min(BAR_MAX, BAR_MIN + max - len(list));
    // never a full bar while the job runs
    const filled = Math.min(w - 1, Math.floor(f.bar! * w));
    bar.text = `[${'#'.repeat(filled)}${'-'.repeat(w - filled)}]`;
  }
  return ellipsis(
    list
      .map((x) => x.text)
      .filter(Boolean)
      .join(SEP),
    max,
  );
}

/** The line for a log (no terminal): every field, no bar, no width. */
export function renderPlain(s: ProgressState): string {
  const f = fields(s);
  return `${f.head}: ${[f.phase, ...f.rest.map((r) => r.text).filter(Boolean)].join(', ')}`;
}

/** The last line: what happened, from the finished job (and its result, when it is a backup). */
export function renderFinal(job: Job): string {
  const p = job.progress;
  const took = job.finishedAt ? num(Date.parse(job.finishedAt) - Date.parse(job.startedAt)) : undefined;
  const name = job.volume ? ' ' + job.volume : '';
  const tookText = took !== undefined ? ` in ${duration(took)}` : '';
  if (job.state === 'failed') {
    const at = [bytesOf(num(p.bytesDone) ?? 0, p.bytesTotal), filesOf(job.kind, num(p.filesDone) ?? 0, p.filesTotal)].join(', ');
    return `${job.kind}${name} failed during ${phaseName(p)}${took !== undefined ? ` after ${duration(took)}` : ''} (${at})`;
  }
  const r = job.result as Partial<{ files: number; bytes: number; bytesNew: number; bytesAdded: number }> | undefined;
  const stored = num(r?.bytes);
  if (job.kind === 'backup' && stored !== undefined) {
    const rate = took ? ` (${bytes((stored * 1000) / took)}/s)` : '';
    return `backed up${name}: ${r?.files ?? p.filesDone} files, ${bytes(stored)}${tookText}${rate}; new data ${bytes(r?.bytesNew ?? 0)}, ${bytes(r?.bytesAdded ?? 0)} written to the target`;
  }
  const snap = job.result as Partial<Snapshot> | undefined;
  if (job.kind === 'snapshot' && snap?.name !== undefined) {
    const st = snap.stats;
    const what = st?.files !== undefined ? `: ${st.files} files, ${st.copied ?? 0} copied (${bytes(st.copiedBytes ?? 0)}), ${st.linked ?? 0} unchanged` : ` (${snap.method})`;
    return `snapshot ${snap.name} of${name}${tookText}${what}`;
  }
  const verb: Record<string, string> = { restore: 'restored', backup: 'backed up', prune: 'pruned', verify: 'verified' };
  const what = [p.filesDone || num(p.filesTotal) ? `${num(p.filesDone) ?? 0} ${unitOf(job.kind)}` : '', num(p.bytesDone) ? bytes(p.bytesDone) : ''].filter(Boolean).join(', ');
  return `${verb[job.kind] ?? `${job.kind} done`}${name}${what ? ': ' + what : ''}${tookText}`;
}

/** Bytes per second over a sliding window of samples (the follower's polls). */
export class RateMeter {
  private readonly samples: Array<{ t: number; bytes: number }> = [];
  constructor(private readonly windowMs = 10_000) {}

  private what: string | undefined;

  /** A sample of a count of bytes; another `what` (or a count that went back) starts the measure again. */
  add(t: number, bytesDone: number, what = 'bytes'): void {
    const last = this.samples[this.samples.length - 1];
    if (what !== this.what || (last && bytesDone < last.bytes)) this.samples.length = 0;
    this.what = what;
    this.samples.push({ t, bytes: bytesDone });
    while (this.samples.length > 2 && t - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }

  /** Undefined until a second of samples is there (and when nothing moved). */
  rate(): number | undefined {
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    if (!a || !b || b.t - a.t < 1000 || b.bytes <= a.bytes) return undefined;
    return ((b.bytes - a.bytes) * 1000) / (b.t - a.t);
  }
}

/**
 * How the follower writes: on a terminal one live line, redrawn in place; without one (a pipe, a file,
 * CI) a line per phase change and at most one every 10 s, never the same line twice.
 */
export class ProgressPrinter {
  private lastPlain = '';
  private lastPlainAt = -Infinity;
  private lastPhase: string | undefined;
  private live = '';
  private readonly meter = new RateMeter();

  constructor(
    private readonly out: { write(s: string): unknown; isTTY?: boolean; columns?: number },
    private readonly now: () => number = Date.now,
    private readonly everyMs = 10_000,
  ) {}

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  update(job: Job): void {
    const t = this.now();
    // in the finish phase only the upload moves: its rate is the one to show
    const finishing = phaseName(job.progress) === 'finish';
    this.meter.add(t, num(finishing ? job.progress.bytesUploaded : job.progress.bytesDone) ?? 0, finishing ? 'sent' : 'read');
    const s: ProgressState = { kind: job.kind, ...(job.volume ? { volume: job.volume } : {}), state: job.state, progress: job.progress, ...(this.meter.rate() !== undefined ? { rate: this.meter.rate()! } : {}) };
    if (this.tty) {
      const line = renderProgress(s, this.out.columns || 80);
      if (line !== this.live) this.out.write(`\r${line}\x1b[K`);
      this.live = line;
      return;
    }
    const phase = phaseName(job.progress);
    const changed = phase !== this.lastPhase;
    this.lastPhase = phase;
    if (!changed && t - this.lastPlainAt < this.everyMs) return;
    const line = renderPlain(s);
    if (line === this.lastPlain) return;
    this.out.write(line + '\n');
    this.lastPlain = line;
    this.lastPlainAt = t;
  }

  /** End the live line where it stands (the job's end is not known). */
  abandon(): void {
    if (this.tty && this.live) this.out.write('\n');
    this.live = '';
  }

  /** Replace the live line by the final one. */
  finish(job: Job): void {
    this.out.write(`${this.tty && this.live ? '\r\x1b[K' : ''}${renderFinal(job)}\n`);
    this.live = '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Follow a job until it ends, drawing its progress on stderr (nothing with `quiet`, for --json), then the
 * line that says what happened. Resolves with the finished job; a failed job throws its error.
 */
export async function follow(api: FerryClient, job: Job, { quiet = false } = {}): Promise<Job> {
  const printer = quiet ? undefined : new ProgressPrinter(process.stderr);
  for (let j = job; ; ) {
    if (j.state !== 'running') {
      printer?.finish(j);
      if (j.state === 'failed') throw new FerryError((j.error?.code as never) ?? 'internal', j.error?.message ?? 'the job failed');
      return j;
    }
    printer?.update(j);
    await sleep(process.stderr.isTTY ? 200 : 500);
    try {
      j = await api.job(j.id);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'unreachable')) throw err;
      // ferryd went away mid-job: whether the job ended is unknown here, and where to learn it is the news
      printer?.abandon();
      const what = `${j.kind}${j.volume ? ` of ${j.volume}` : ''}`;
      throw new ApiError(0, 'unreachable', `lost ferryd while following job ${j.id} (${what}), so how it ended is not known: ${err.message}. Once ferryd is back, \`ferry job wait ${j.id}\` says (a job that ferryd stopped during is failed, "interrupted": run it again)`);
    }
  }
}
