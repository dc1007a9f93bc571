/** The Hub's history graph of a volume: one lane per branch, a line from each commit to its parent, with check-out and reset buttons. */
import { Empty } from '../components';
import { ago } from '../format';
import type { BranchList as Branches, Snapshot } from '../api';

/** The commits of the current branch newer than `commit` (what a reset to it takes off the branch), newest first. */
export function commitsAfter(commits: Snapshot[], branches: Branches | undefined, commit: Snapshot): Snapshot[] {
  const byId = new Map(commits.map((c) => [c.id, c]));
  const tip = branches?.branches.find((b) => b.name === branches.current)?.tip;
  const out: Snapshot[] = [];
  for (let c = tip ? byId.get(tip) : undefined; c && c.id !== commit.id; c = c.parent ? byId.get(c.parent) : undefined) out.push(c);
  return out;
}

export /** The commit history as a graph: one lane per branch, a line from each commit to its parent. */
function HistoryGraph({ commits, branches, onCheckout, onReset }: { commits: Snapshot[]; branches: Branches | undefined; onCheckout?: (branch: string) => void; onReset?: (c: Snapshot) => void }) {
  if (commits.length === 0) return <Empty>No commits yet (`ferry commit VOLUME -m MESSAGE` makes one).</Empty>;
  const rows = [...commits].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  const laneNames: string[] = [];
  if (branches?.current) laneNames.push(branches.current);
  for (const c of rows) if (c.branch && !laneNames.includes(c.branch)) laneNames.push(c.branch);
  const lane = (c: Snapshot) => Math.max(0, laneNames.indexOf(c.branch ?? ''));
  const tips = new Map((branches?.branches ?? []).map((b) => [b.tip, b.name]));
  const rowH = 34;
  const laneW = 22;
  const width = 16 + laneNames.length * laneW;
  const index = new Map(rows.map((c, i) => [c.id, i]));
  const x = (c: Snapshot) => 12 + lane(c) * laneW;
  const y = (i: number) => rowH / 2 + i * rowH;
  const colors = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2'];
  return (
    <div class="graph" data-testid="history-graph">
      <svg width={width} height={rows.length * rowH} aria-hidden="true">
        {rows.map((c, i) => {
          const p = c.parent !== undefined ? index.get(c.parent) : undefined;
          if (p === undefined) return null;
          const parent = rows[p]!;
          return <path key={`e${c.id}`} d={`M${x(c)},${y(i)} C${x(c)},${y(i) + rowH / 2} ${x(parent)},${y(p) - rowH / 2} ${x(parent)},${y(p)}`} stroke={colors[lane(c) % colors.length]} stroke-width="2" fill="none" />;
        })}
        {rows.map((c, i) => (
          <circle key={c.id} cx={x(c)} cy={y(i)} r="5" fill={colors[lane(c) % colors.length]} />
        ))}
      </svg>
      <ol class="graph-rows">
        {rows.map((c) => (
          <li key={c.id} style={{ height: `${rowH}px` }} data-testid="commit-row">
            <code>{c.id.slice(0, 8)}</code> {tips.has(c.id) && <span class={`tag${tips.get(c.id) === branches?.current ? ' current' : ''}`}>{tips.get(c.id)}</span>}{' '}
            <span class="message" title={c.message ?? c.name}>
              {c.message ?? c.name}
            </span>{' '}
            <span class="muted">· {ago(c.createdAt)}</span>
            <span class="row-actions">
              {onCheckout && tips.has(c.id) && tips.get(c.id) !== branches?.current && (
                <button type="button" class="link" onClick={() => onCheckout(tips.get(c.id)!)}>
                  Check out
                </button>
              )}
              {onReset && tips.get(c.id) !== branches?.current && (
                <button type="button" class="link danger" onClick={() => onReset(c)} title={`reset ${branches?.current ?? 'the branch'} to this commit`}>
                  Reset here
                </button>
              )}
            </span>
          </li>
        ))}
      </ol>
    </div>
  );
}
