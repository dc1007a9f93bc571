/** Removing a volume: the checks of who still uses or references it (this host's containers, other nodes), then the trash record and the data moved to the trash (at once in a local pool: the record in place once the data is), the record dropped. */
import type { Logger } from 'pino';
import type { Catalog, TrashRecord, VolumeRecord } from '../catalog/catalog.js';
import type { Cluster } from '../cluster/cluster.js';
import { isRunningState, type ContainerRef, type DockerClient } from '../docker/client.js';
import type { Pool } from '../pools/pool.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { pauseAt } from '../util/test-pause.js';
import { trashInfo, type TrashInfo } from './trash.js';

/** The result of a removal through the CLI or API. */
export interface RemoveResult {
  trash: TrashInfo | undefined;
  /** What `--force` overrode (each a sentence), empty without --force or when nothing was in the way. */
  overrode: string[];
}

export interface RemoveOptions {
  /** Delete the data at once instead of moving it to the trash. */
  purge?: boolean;
  /** Drop recorded mounts (stale after a Docker crash) and override the reference checks instead of refusing. */
  force?: boolean;
  /**
   * The CLI/API removal: refuse while containers (any state) on this host reference the volume, or, in a
   * shared pool, containers on another live node; refuse when Docker cannot be asked. Docker's own
   * VolumeDriver.Remove does not set it: Docker has checked already, and waits for the answer.
   */
  checkReferences?: boolean;
}

/** What removal needs of the volume service. */
export interface RemovalContext {
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly node: string;
  readonly now: () => number;
  readonly trashRetentionMs: number;
  readonly cluster?: Cluster;
  readonly docker?: DockerClient;
  readonly dockerHost?: string;
  pool(name: string): Pool;
  isShared(pool: string): boolean;
  /** Delete a trash entry's data and record for good. */
  purge(t: TrashRecord): Promise<void>;
}

export class Removal {
  constructor(private readonly c: RemovalContext) {}

  /**
   * Remove a volume nobody else uses (callers hold its lock and, on a shared pool, have looked at the other
   * nodes' attachments under a change mark). `early`: the containers using it, asked before the lock.
   */
  async run(rec: VolumeRecord, { purge, force, checkReferences, early }: Required<RemoveOptions> & { early: ContainerRef[] | undefined }): Promise<RemoveResult> {
    const { name } = rec;
    await pauseAt('remove-before-move');
    // the CLI/API path asks inside the lock, just before the removal: the narrowest window
    const asked = checkReferences ? await this.askDocker(name) : undefined;
    const users = checkReferences ? asked!.containers : early;
    const mountIds = Object.keys(rec.mounts);
    const running = (users ?? []).filter((c) => isRunningState(c.state));
    if ((mountIds.length > 0 && !force) || running.length > 0) {
      // every container that holds it; the others (a Swarm's `created` tasks that never ran) apart, at most 5
      const named = (cs: ContainerRef[], most = Infinity) => cs.slice(0, most).map((c) => `${c.name} (${c.state})`).join(', ') + (cs.length > most ? `, and ${cs.length - most} more` : '');
      const idle = (users ?? []).filter((c) => !running.includes(c));
      const who =
        running.length > 0
          ? `containers ${named(running)}${idle.length > 0 ? `; also referenced by ${idle.length} not running: ${named(idle, 5)}` : ''}`
          : users && users.length > 0
            ? `containers ${named(users, 10)}`
            : `${mountIds.length} Docker mount(s) ${mountIds.map((m) => m.slice(0, 12)).join(', ')}`;
      throw new FerryError(
        'in_use',
        `volume ${name} is in use by ${who}; stop and remove those containers first` +
          (running.length === 0 ? ' (if no container uses it any more, `ferry volume rm --force` drops the stale mounts)' : ''),
        { containers: users ?? [], mountIds },
      );
    }
    // Docker's own `docker volume rm` (and `compose down -v`): Docker looked at this host's containers only
    if (!checkReferences && this.c.isShared(rec.pool)) await this.refuseReferencedElsewhere(rec);
    const overrode = checkReferences ? await this.referenceProblems(rec, asked!, force) : [];
    if (overrode.length > 0) this.c.log.warn({ volume: name, overrode }, 'volume removed with --force although: ' + overrode.join('; '));
    const { catalog } = this.c;
    const pool = this.c.pool(rec.pool);
    // --force over recorded mounts: an image is detached first (refused while a container still holds it)
    if (mountIds.length > 0) await pool.detach?.(name);
    for (const id of mountIds) await catalog.changeMount(rec, id, '-', new Date(this.c.now()).toISOString());
    const removedAt = this.c.now();
    const trash: TrashRecord = {
      id: `${name}@${removedAt}`,
      removedAt: new Date(removedAt).toISOString(),
      expiresAt: new Date(removedAt + this.c.trashRetentionMs).toISOString(),
      volume: { ...rec, mounts: {} },
    };
    if (this.c.isShared(rec.pool)) {
      await catalog.trash.save(trash.id, trash);
      // shared: withdraw the record first, so no host mounts the volume while its data moves away
      await (await this.c.cluster!.store(rec.pool)).unpublish(name, rec.createdAt);
      await pool.moveToTrash(name, trash.id);
    } else {
      // The data moves into the trash while the trash record is written and fsynced; the record is put in
      // place once the move is on disk (two flushes deep instead of three). Killed before that, the data
      // sits in the trash without a record while the volume's record stands: start-up moves it back
      // (recovery.ts), as nothing was acknowledged.
      let moved = false;
      const move = pool.moveToTrash(name, trash.id).then(async () => {
        moved = true;
        await pauseAt('remove-before-trash-record');
      });
      try {
        await catalog.trash.saveAfter(trash.id, trash, move);
      } catch (err) {
        if (moved) {
          await pool.restoreFromTrash(trash.id, name).catch((e: unknown) =>
            this.c.log.error({ volume: name, trash: trash.id, err: errorMessage(e) }, 'could not move the data back from the trash after its trash record could not be written; the next start of ferryd does'),
          );
        }
        throw err;
      }
    }
    const dropped = catalog.volumes.save(name, undefined);
    if (purge || this.c.isShared(rec.pool)) await dropped;
    else {
      // In a local pool the trash record and the data in the trash, both on disk now, are the removal: a start
      // after a crash drops a volume record whose data sits in the trash under a trash record of the same
      // incarnation (recovery.ts). So Docker is answered without waiting for the record's unlink. (A purge
      // waits: with the trash gone, the record would be a volume without data.)
      void dropped.catch((err: unknown) => this.c.log.error({ volume: name, trash: trash.id, err: errorMessage(err) }, 'could not delete the record of a volume moved to the trash: it is listed again until the next start of ferryd, which finishes the removal (the data and the trash record are on disk)'));
    }
    if (purge) {
      await this.c.purge(trash);
      this.c.log.info({ volume: name }, 'volume removed and purged');
      return { trash: undefined, overrode };
    }
    this.c.log.info({ volume: name, trash: trash.id, expiresAt: trash.expiresAt }, 'volume moved to the trash');
    return { trash: trashInfo(trash, this.c.node), overrode };
  }

  /**
   * A removal Docker asked for: Docker checked the containers of its own host, not those of the other nodes of a
   * shared pool. Stopped containers there that reference the volume would start on a new, empty volume of the
   * same name (Compose makes one), the data in this node's trash: refused. Not knowing (the share cannot be read)
   * refuses nothing here: the removal itself needs the share.
   */
  private async refuseReferencedElsewhere(rec: VolumeRecord): Promise<void> {
    let refs: Awaited<ReturnType<Cluster['referencesElsewhere']>>;
    try {
      refs = (await this.c.cluster!.referencesElsewhere(rec.pool, rec.name)).filter((r) => r.containers.length > 0);
    } catch (err) {
      this.c.log.warn({ volume: rec.name, err: errorMessage(err) }, 'could not read which containers of other nodes reference a volume Docker removes');
      return;
    }
    if (refs.length === 0) return;
    const who = refs.map((r) => `containers ${r.containers.join(', ')} on node ${r.node}`).join('; ');
    throw new FerryError(
      'in_use',
      `volume ${rec.name} is referenced by ${who}: they would start on a new, empty volume of this name; remove those containers first (\`docker rm\` there), or remove the volume with \`ferry volume rm --force ${rec.name}\``,
      { references: refs },
    );
  }

  /** Which containers on this host reference a volume (any state), or why Docker could not be asked. */
  private async askDocker(name: string): Promise<{ containers?: ContainerRef[]; problem?: string }> {
    if (!this.c.docker) return { containers: [] }; // dockerHost: none, no engine on this host
    try {
      return { containers: await this.c.docker.containersUsing(name) };
    } catch (err) {
      return { problem: `the Docker engine at ${this.c.dockerHost ?? 'its dockerHost'} did not answer (${errorMessage(err)})` };
    }
  }

  /**
   * What stands in the way of removing a volume no container has mounted: containers on this host that
   * reference it (stopped, created, dead: `docker start` would fail with "no such volume"), containers on
   * other live nodes of a shared pool, an engine that cannot be asked. Throws unless `force`; with
   * `force`, returns what was overridden.
   */
  private async referenceProblems(rec: VolumeRecord, asked: { containers?: ContainerRef[]; problem?: string }, force: boolean): Promise<string[]> {
    const name = rec.name;
    const refs: string[] = [];
    const unknown: string[] = [];
    if (asked.containers && asked.containers.length > 0) refs.push(`containers ${asked.containers.map((c) => `${c.name} (${c.state})`).join(', ')} on this host`);
    if (asked.problem) unknown.push(`cannot tell whether containers on this host reference volume ${name}: ${asked.problem}`);
    if (this.c.isShared(rec.pool)) {
      try {
        for (const r of await this.c.cluster!.referencesElsewhere(rec.pool, name)) {
          if (r.containers.length > 0) refs.push(`containers ${r.containers.join(', ')} on node ${r.node}${r.docker === 'unreachable' ? ' (as last known)' : ''}`);
          if (r.docker === 'unreachable') unknown.push(`node ${r.node} cannot ask its Docker engine (${r.reason ?? 'no answer'})`);
        }
      } catch (err) {
        unknown.push(`cannot read what the other nodes of pool ${rec.pool} report (${errorMessage(err)})`);
      }
    }
    const problems = [...(refs.length ? [`volume ${name} is referenced by ${refs.join('; ')}`] : []), ...unknown];
    if (problems.length === 0 || force) return problems;
    if (refs.length > 0) {
      throw new FerryError(
        'in_use',
        `${problems.join('; ')}: Docker refuses \`docker volume rm\` for it, and those containers would fail to start ("no such volume"); remove them first (\`docker rm\`), or pass --force to remove it anyway`,
        { containers: asked.containers ?? [], problems },
      );
    }
    throw new FerryError('unavailable', `${problems.join('; ')}; start Docker (or check dockerHost), or pass --force to remove it anyway`, { problems });
  }
}
