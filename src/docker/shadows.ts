/** Docker volumes of another driver (mostly `local`) under the name of a ferry volume: what they are and what to do about them. */
import type { DockerVolume } from './client.js';
import { isOurDriver } from './driver-name.js';

/**
 * A same-named volume of another driver. Docker 20.10 keeps both; for `docker run -v NAME` without a
 * driver it takes the one its store recorded, else whichever driver answers first, so a container may get
 * an empty `local` volume instead of ferry's data, and its writes go there. Docker makes one when it cannot
 * reach the plugin while it resolves the name: ferryd down, or a `docker run` that meets dockerd's own
 * shutdown ("create NAME: database not open" leaves DOCKER-ROOT/volumes/NAME behind; bench/docker-shadow.ts).
 */
export interface Shadow {
  name: string;
  driver: string;
  mountpoint?: string;
}

/** The volumes of `listed` (Docker's `GET /volumes`) that are not ferry's but carry the name of one of `isFerry`'s. */
export function findShadows(listed: DockerVolume[], ours: string, isFerry: (name: string) => boolean): Shadow[] {
  return listed
    .filter((v) => !isOurDriver(v.Driver, ours) && isFerry(v.Name))
    .map((v) => ({ name: v.Name, driver: v.Driver, ...(v.Mountpoint ? { mountpoint: v.Mountpoint } : {}) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** For a person: what is wrong, and how to get rid of the other one without losing anything. */
export function shadowText(s: Shadow, ours: string): { message: string; fix: string } {
  const where = s.mountpoint ? ` (its files: ${s.mountpoint})` : '';
  return {
    message: `Docker on this host has a \`${s.driver}\` volume named ${s.name} beside ferry's${where}: \`docker run -v ${s.name}:…\` may mount either, and what a container writes to the other one is not in ferry's volume`,
    fix: `copy anything written there${s.mountpoint ? ` (${s.mountpoint})` : ''} into ferry's volume, then \`docker volume rm ${s.name}\` until \`docker volume ls --filter name=^${s.name}$\` shows driver ${ours} alone (if Docker removed ferry's first, \`ferry volume undelete ${s.name}\` brings it back from the trash)`,
  };
}
