/** The API's volume routes: list (volume-list.ts), create, inspect, resize, remove. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { flag, parse } from '../request.js';
import type { VolumeInfo, VolumeService } from '../../volumes/service.js';
import type { UsageTracker } from '../../volumes/usage.js';
import type { BackupHistory } from '../../backup/history.js';
import type * as W from '../../wire/types.js';
import { volumeListRoute } from './volume-list.js';

const labelsSchema = z.record(z.string(), z.string());
const createBody = z.strictObject({
  name: z.string(),
  options: z.record(z.string(), z.string()).optional(),
  labels: labelsSchema.optional(),
});
const removeQuery = z.strictObject({ purge: flag, force: flag });
const inspectQuery = z.strictObject({ usage: flag });
const resizeBody = z.strictObject({ size: z.union([z.string(), z.number()]) });
export function volumeRoutes(
  app: FastifyInstance,
  service: VolumeService,
  hub: {
    usage?: UsageTracker | undefined;
    history?: BackupHistory | undefined;
    register?: ((name: string) => Promise<W.DockerRegistration>) | undefined;
    schedules?: ((v: VolumeInfo) => Promise<W.VolumeSchedule[]>) | undefined;
  },
): void {
  volumeListRoute(app, service, hub);

  app.post('/v1/volumes', async (req, reply) => {
    const body = parse(createBody, req.body ?? {}, 'request body');
    const v: W.Volume = await service.create(body.name, body.options ?? {}, body.labels ?? {});
    void hub.usage?.pass().catch(() => undefined); // a new volume's size, soon
    // into Docker's store before the answer: a `docker run -v NAME` right after must not meet a Docker that
    // does not hold the name while ferryd cannot be reached (it would make a `local` volume of it)
    const registration = await hub.register?.(v.name);
    const created: W.VolumeCreated = { ...v, ...(registration ? { registration } : {}) };
    return reply.code(201).send(created);
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
    const schedules = (await hub.schedules?.(v)) ?? [];
    const elsewhere = await service.referencedElsewhere(v);
    return { ...v, containers: containers ?? null, ...(elsewhere.length ? { referencedElsewhere: elsewhere } : {}), schedules, attachments, ...(usage ? { usage } : {}), ...(usageBytes !== undefined ? { usageBytes } : {}), ...(size ? { size } : {}) };
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
