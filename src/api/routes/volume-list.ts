/** The API's volume list (GET /v1/volumes): made of the catalog, the usage figures, the backup history and Docker's answer, and kept between calls. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parse } from '../request.js';
import type { VolumeService } from '../../volumes/service.js';
import type { VolumeInfo } from '../../volumes/listing.js';
import type { UsageTracker } from '../../volumes/usage.js';
import type { BackupHistory } from '../../backup/history.js';
import type * as W from '../../wire/types.js';
import { joinJson, JsonItems, type KeyedItem } from '../../util/json-list.js';

/** `view=list`: only the fields a list shows (W.VolumeSummary); `full` (the default): every field (W.ListedVolume). */
const listQuery = z.strictObject({ view: z.enum(['full', 'list']).optional() });
type View = 'full' | 'list';

/**
 * What one volume service's lists kept, per view (shared by the unix socket's and the TCP listener's routes):
 * - `sent`: the list as last sent, and the versions of what it was made of (the catalog, the usage figures, the
 *   backup history, Docker's answer of who holds what): sent again as it is while none of them changed;
 * - `items`: each volume's entry as JSON, made again only when its record, its attachments or its containers
 *   changed, or the usage figures or the backup history did (they have one version for every volume): after a
 *   Mount or a create, one entry is made, not 10,000.
 */
interface Kept {
  sent?: { catalog: number; usage: number | undefined; history: number | undefined; mounted: boolean; holding: Map<string, W.ContainerRef[]> | undefined; body: Buffer };
  items: JsonItems;
}
const kept = { full: new WeakMap<VolumeService, Kept>(), list: new WeakMap<VolumeService, Kept>() };

function keptFor(view: View, service: VolumeService): Kept {
  let k = kept[view].get(service);
  if (!k) kept[view].set(service, (k = { items: new JsonItems() }));
  return k;
}

/** A ListedVolume cut to a VolumeSummary: a fresh object, the fields in the order of the full entry. */
function summary(v: W.ListedVolume): W.VolumeSummary {
  const out: W.VolumeSummary = { name: v.name, pool: v.pool, createdAt: v.createdAt, node: v.node, labels: v.labels, access: v.access, shared: v.shared, mounts: v.mounts, attachments: v.attachments };
  if (v.containers) out.containers = v.containers;
  if (v.lastSnapshotAt !== undefined) out.lastSnapshotAt = v.lastSnapshotAt;
  if (v.lastBackupAt !== undefined) out.lastBackupAt = v.lastBackupAt;
  if (v.backupFailing) out.backupFailing = v.backupFailing;
  if (v.usage) out.usage = v.usage;
  return out;
}

export function volumeListRoute(app: FastifyInstance, service: VolumeService, hub: { usage?: UsageTracker | undefined; history?: BackupHistory | undefined }): void {
  // 10,000 volumes are 3.5 MB of JSON: made again only when something in it changed (a UI polls it), and
  // written into a Buffer item by item (util/json-list.ts). With shared pools the list also holds what the
  // other nodes do (attachments, their usage figures), which no version here counts: made whole on every call.
  app.get('/v1/volumes', async (req, reply) => {
    const view = parse(listQuery, req.query, 'query').view ?? 'full';
    const k = keptFor(view, service);
    await service.syncAll();
    const attachments = await service.attachmentsByVolume();
    const { history, usage } = hub;
    const catalog = service.version;
    const sent = service.clustered ? undefined : k.sent;
    const mounted = sent?.catalog === catalog ? sent.mounted : service.anyMounted();
    // Docker is asked only when something is mounted here (one call, cached for 5 s)
    const holding = mounted ? await service.containersHolding() : undefined;
    reply.type('application/json; charset=utf-8');
    if (sent && sent.catalog === service.version && sent.usage === usage?.version && sent.history === history?.version && sent.holding === holding) {
      return reply.send(sent.body);
    }
    const before = { catalog: service.version, usage: usage?.version, history: history?.version };
    // (10,000 volumes: every object made here is made 10,000 times; the list's own fresh objects are filled in place)
    const none: W.Attachment[] = [];
    const entry = (v: VolumeInfo, att: W.Attachment[] | undefined, containers: W.ContainerRef[] | undefined): W.ListedVolume | W.VolumeSummary => {
      const out = v as W.ListedVolume;
      out.attachments = att ?? none;
      if (v.mounts > 0 && containers?.length) out.containers = containers;
      const snap = usage?.lastSnapshotOf(v.name);
      if (snap) out.lastSnapshotAt = snap;
      if (history) {
        const t = history.lastSuccess(v);
        if (t !== undefined) out.lastBackupAt = new Date(t * 1000).toISOString();
        const failing = history.failing(v);
        if (failing.length) out.backupFailing = failing;
      }
      if (usage) out.usage = usage.of(v);
      return view === 'list' ? summary(out) : out;
    };
    const hint = k.sent?.body.length ?? service.count * (view === 'list' ? 280 : 400); // (a volume is ~360 bytes: the first list grows its buffer seldom)
    let body: Buffer;
    if (service.clustered) {
      body = joinJson('{"volumes":[', service.listEach(), (v) => JSON.stringify(entry(v, attachments.get(v.name), holding?.get(v.name))), ']}', hint);
    } else {
      type Parts = [name: string, att: W.Attachment[] | undefined, containers: W.ContainerRef[] | undefined];
      const keyed = function* (): Generator<KeyedItem<Parts>> {
        for (const [name, stamp] of service.listStamps()) {
          const att = attachments.get(name);
          const containers = holding?.get(name);
          yield { key: name, from: [stamp, att, containers], x: [name, att, containers] };
        }
      };
      body = k.items.list([usage?.version, history?.version], '{"volumes":[', keyed(), ([name, att, containers]) => entry(service.get(name), att, containers), ']}', hint);
    }
    // (kept only when what `mounted` was decided on held across the wait for Docker)
    if (!service.clustered && before.catalog === catalog) k.sent = { ...before, mounted, holding, body };
    return reply.send(body);
  });
}
