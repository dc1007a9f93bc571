/** The Hub's jobs page: running and finished jobs (snapshots, backups, restores) with their progress. */
import { client, type Job, type Snapshot } from '../api';
import { Bar, Empty, ErrorBox, usePoll } from '../components';
import { ago, bytes, date, duration } from '../format';

/** Rate and time left of a running job, from what it did since it started. */
function eta(job: Job): string {
  const p = job.progress;
  const secs = (Date.now() - Date.parse(job.startedAt)) / 1000;
  if (job.state !== 'running' || !p.bytesTotal || p.bytesDone <= 0 || secs <= 0) return '';
  const rate = p.bytesDone / secs;
  const left = (p.bytesTotal - p.bytesDone) / rate;
  // all read (a backup's finish phase: the upload and index go on): no time left to guess
  return ` · ${bytes(rate)}/s${left >= 1 && p.phase !== 'finish' ? ` · about ${duration(left * 1000)} left` : ''}`;
}

/** A running job as a person reads it: its phase, bytes (of a known total), files (of a known total), time left. */
function runningText(job: Job): string {
  const p = job.progress;
  const total = p.bytesTotal ?? 0;
  const parts = [p.phase ?? 'running'];
  if (total || p.bytesDone) parts.push(`${bytes(p.bytesDone)}${total ? ` of ${bytes(total)}` : ''}`);
  if (p.filesTotal) parts.push(`${p.filesDone}/${p.filesTotal} files`);
  else if (p.filesDone) parts.push(`${p.filesDone} files`);
  return parts.join(' · ') + eta(job);
}

/** What a finished job did: a snapshot names itself and what it copied; others the bytes they moved. */
function doneText(job: Job): string {
  const p = job.progress;
  if (job.kind === 'snapshot') {
    const s = job.result as Partial<Snapshot> | undefined;
    const st = s?.stats;
    return `done · ${s?.name ?? 'snapshot'}${st?.files !== undefined ? ` · ${st.files} files, ${st.copied ?? 0} copied (${bytes(st.copiedBytes ?? 0)})` : ''}`;
  }
  return `done · ${bytes(p.bytesDone)}${p.bytesUploaded !== undefined ? `, ${bytes(p.bytesUploaded)} uploaded` : ''}`;
}

export function JobRow({ job }: { job: Job }) {
  const p = job.progress;
  const total = p.bytesTotal ?? 0;
  const ended = job.finishedAt ? Date.parse(job.finishedAt) : Date.now();
  const label = job.state === 'succeeded' ? doneText(job) : job.state === 'failed' ? 'failed' : runningText(job);
  return (
    <div class={`job ${job.state}`} data-testid="job" data-state={job.state} data-job={job.id}>
      <div class="job-head">
        <b>{job.kind}</b> {job.volume && <a href={`#/volumes/${encodeURIComponent(job.volume)}`}>{job.volume}</a>}
        {job.target && <span class="muted"> {job.kind === 'restore' ? 'from' : 'to'} {job.target}</span>} <span class={`tag state-${job.state}`}>{job.state}</span>
        <span class="muted small" title={date(job.startedAt)}>
          {' '}
          started {ago(job.startedAt)} · {duration(ended - Date.parse(job.startedAt))}
        </span>
      </div>
      <Bar testid="job-progress" value={job.state === 'succeeded' ? 1 : p.bytesDone} total={job.state === 'succeeded' ? 1 : total} label={label} warnAt={101} />
      {job.error && (
        <div class="error small" role="alert">
          {job.error.message}
        </div>
      )}
    </div>
  );
}

export function JobsPage() {
  const [data, error] = usePoll(() => client.jobs(), 1000);
  const jobs = [...(data?.jobs ?? [])].sort((a, b) => (a.state === 'running' ? 0 : 1) - (b.state === 'running' ? 0 : 1) || b.startedAt.localeCompare(a.startedAt));
  const running = jobs.filter((j) => j.state === 'running').length;
  return (
    <section data-testid="jobs-page">
      <h2>Jobs</h2>
      <p class="muted">
        Snapshots, backups, restores, verifications and prunes, live (refreshed every second). {running} running; the last 200 finished jobs are kept, also across a restart
        of ferryd (a job that ran when ferryd stopped is shown as failed).
      </p>
      <ErrorBox error={error} />
      {data && jobs.length === 0 && <Empty>No job since ferryd started. Start a backup from a volume's page.</Empty>}
      {jobs.map((j) => (
        <JobRow key={j.id} job={j} />
      ))}
    </section>
  );
}
