/** The API's volume routes: list, create, inspect, resize, remove. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { flag, parse } from '../request.js';
import type { VolumeService } from '../../volumes/service.js';
import type { UsageTracker } from '../../volumes/usage.js';
import type { BackupHistory } from '../../backup/history.js';
import type * as W from '../../wire/types.js';
import { jsonList } from '../../util/json-list.js';

const labelsSchema = z.record(z.string(), z.string());
const createBody = z.strictObject({
  name: z.string(),
  options: z.record(z.string(), z.string()).optional(),
  labels: labelsSchema.optional(),
});
const removeQuery = z.strictObject({ purge: flag, force: flag });
const inspectQuery = z.strictObject({ usage: flag });
const resizeBody = z.strictObject({ size: z.union([z.string(), z.number()]) });
/** `view=list`: only the fields a list shows (W.VolumeSummary); `full` (the default): every field (W.ListedVolume). */
const listQuery = z.strictObject({ view: z.enum(['full', 'list']).optional() });

/**
 * The volume list as last sent, and the versions of what it was made of (the catalog, the usage figures, the
 * backup history, Docker's answer of who holds what): sent again as it is while none of them changed. One per
 * volume service, shared by the unix socket's and the TCP listener's routes.
 */
interface ListCache {
  catalog: number;
  usage: number | undefined;
  history: number | undefined;
  mounted: boolean;
  holding: Map<string, W.ContainerRef[]> | undefined;
  body: Buffer;
}
const listCaches = { full: new WeakMap<VolumeService, ListCache>(), list: new WeakMap<VolumeService, ListCache>() };

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

export function volumeRoutes(app: FastifyInstance, service: VolumeService, hub: { usage?: UsageTracker | undefined; history?: BackupHistory | undefined }): void {
  // 10,000 volumes are 3.5 MB of JSON: made again only when something in it changed (a UI polls it), and
  // written into a Buffer item by item (util/json-list.ts). With shared pools the list also holds what the
  // other nodes do (attachments, their usage figures), which no version here counts: made on every call.
  app.get('/v1/volumes', async (req, reply) => {
    const view = parse(listQuery, req.query, 'query').view ?? 'full';
    const caches = listCaches[view];
    await service.syncAll();
    const attachments = await service.attachmentsByVolume();
    const history = hub.history;
    const usage = hub.usage;
    const catalog = service.version;
    const cached = service.clustered ? undefined : caches.get(service);
    const mounted = cached?.catalog === catalog ? cached.mounted : service.anyMounted();
    // Docker is asked only when something is mounted here (one call, cached for 5 s)
    const holding = mounted ? await service.containersHolding() : undefined;
    reply.type('application/json; charset=utf-8');
    if (cached && cached.catalog === service.version && cached.usage === usage?.version && cached.history === history?.version && cached.holding === holding) {
      return reply.send(cached.body);
    }
    const before = { catalog: service.version, usage: usage?.version, history: history?.version };
    // (10,000 volumes: every object made here is made 10,000 times; the list's own fresh objects are filled in place)
    const none: W.Attachment[] = [];
    const body = jsonList('{"volumes":[', service.listEach(), (v): W.ListedVolume | W.VolumeSummary => {
      const out = v as W.ListedVolume;
      out.attachments = attachments.get(v.name) ?? none;
      const containers = v.mounts > 0 ? holding?.get(v.name) : undefined;
      if (containers?.length) out.containers = containers;
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
    }, ']}', cached?.body.length ?? service.count * (view === 'list' ? 280 : 400)); // (a volume is ~360 bytes: the first list grows its buffer seldom)
    // (kept only when what `mounted` was decided on held across the wait for Docker)
    if (!service.clustered && before.catalog === catalog) caches.set(service, { ...before, mounted, holding, body });
    return reply.send(body);
  });

  app.post('/v1/volumes', async (req, reply) => {
    const body = parse(createBody, req.body ?? {}, 'request body');
    const v: W.Volume = await service.create(body.name, body.options ?? {}, body.labels ?? {});
    void hub.usage?.pass().catch(() => undefined); // a new volume's size, soon
    return reply.code(201).send(v);
  });

  app.get<{ Params: { name: string } }>('/v1/volumes/:name', async (req): Promise<W.VolumeDetail> => {
    const q = parse(inspectQuery, req.query, 'query');
    const v = service.get(req.params.name);
    const containers = await service.containersUsing(v.name);
    const attachments = v.shared ? ((await service.attachmentsByVolume()).get(v.name) ?? []) : [];
    // ?usage=true measures now; otherwise the cached figures (with the time of their walk)
    const usage = hub.usage ? (q.usage ? await hub.usage.refresh(v.name) : hub.usage.of(v)) : undefined;
    const usageBytes = q.usage ? (usage?.dataBytes ?? (await service.usage(v.name))) : undefined;
    const size = await service.sizes.of(v.name);
    return { ...v, containers: containers ?? null, attachments, ...(usage ? { usage } : {}), ...(usageBytes !== undefined ? { usageBytes } : {}), ...(size ? { size } : {}) };
  });

  app.post<{ Params: { name: string } }>('/v1/volumes/:name/resize', async (req): Promise<W.ResizeResult> => {
    const body = parse(resizeBody, req.body ?? {}, 'request body');
    const size = await service.sizes.resize(req.params.name, String(body.size));
    return { name: req.params.name, size };
  });

  app.delete<{ Params: { name: string } }>('/v1/volumes/:name', async (req) => {
    const q = parse(removeQuery, req.query, 'query');
    const r = await service.removeVolume(req.params.name, { purge: q.purge, force: q.force, checkReferences: true });
    if (r.trash) void hub.usage?.measureTrash().catch(() => undefined); // its size, in the background
    return { removed: req.params.name, purged: q.purge, trash: r.trash ?? null, overrode: r.overrode };
  });
}
