/** The API's volume routes: list, create, inspect, resize, remove. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { flag, parse } from '../request.js';
import type { VolumeService } from '../../volumes/service.js';
import type { UsageTracker } from '../../volumes/usage.js';
import type { BackupHistory } from '../../backup/history.js';
import type * as W from '../../wire/types.js';

const labelsSchema = z.record(z.string(), z.string());
const createBody = z.strictObject({
  name: z.string(),
  options: z.record(z.string(), z.string()).optional(),
  labels: labelsSchema.optional(),
});
const removeQuery = z.strictObject({ purge: flag, force: flag });
const inspectQuery = z.strictObject({ usage: flag });
const resizeBody = z.strictObject({ size: z.union([z.string(), z.number()]) });

export function volumeRoutes(app: FastifyInstance, service: VolumeService, hub: { usage?: UsageTracker | undefined; history?: BackupHistory | undefined }): void {
  app.get('/v1/volumes', async (): Promise<W.VolumeList> => {
    await service.syncAll();
    const attachments = await service.attachmentsByVolume();
    const history = hub.history;
    const list = service.list();
    // Docker is asked only when something is mounted here (one call, cached for 5 s)
    const holding = list.some((v) => v.mounts > 0) ? await service.containersHolding() : undefined;
    // (10,000 volumes: every object made here is made 10,000 times; the list's own fresh objects are filled in place)
    const none: W.Attachment[] = [];
    return {
      volumes: list.map((v) => {
        const out = v as W.ListedVolume;
        out.attachments = attachments.get(v.name) ?? none;
        const containers = v.mounts > 0 ? holding?.get(v.name) : undefined;
        if (containers?.length) out.containers = containers;
        const snap = hub.usage?.lastSnapshotOf(v.name);
        if (snap) out.lastSnapshotAt = snap;
        if (history) {
          const t = history.lastSuccess(v);
          if (t !== undefined) out.lastBackupAt = new Date(t * 1000).toISOString();
          const failing = history.failing(v);
          if (failing.length) out.backupFailing = failing;
        }
        if (hub.usage) out.usage = hub.usage.of(v);
        return out;
      }),
    };
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
