/** The API's trash routes: list, undelete, purge. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { flag, parse } from '../request.js';
import type { VolumeService } from '../../volumes/service.js';
import type { UsageTracker } from '../../volumes/usage.js';
import type * as W from '../../wire/types.js';

const restoreBody = z.strictObject({ as: z.string().optional() }).optional();
const inspectQuery = z.strictObject({ usage: flag });

export function trashRoutes(app: FastifyInstance, service: VolumeService, hub: { usage?: UsageTracker | undefined }): void {
  app.get('/v1/trash', async (req): Promise<W.TrashList> => {
    const q = parse(inspectQuery, req.query, 'query');
    if (q.usage) await hub.usage?.measureTrash();
    const usage = hub.usage;
    return { trash: service.trashList().map((t) => (usage ? { ...t, ...usage.trashOf(t.id) } : t)) };
  });

  app.post<{ Params: { ref: string } }>('/v1/trash/:ref/restore', async (req, reply) => {
    const body = parse(restoreBody, req.body ?? undefined, 'request body');
    return reply.code(201).send(await service.undelete(req.params.ref, body?.as));
  });

  app.delete<{ Params: { ref: string } }>('/v1/trash/:ref', async (req) => ({ purged: await service.trashPurge([req.params.ref]) }));
  app.delete('/v1/trash', async () => ({ purged: await service.trashPurge('all') }));
}
