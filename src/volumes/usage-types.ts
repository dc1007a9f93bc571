// The space a volume takes, as the API reports it: defined once in the wire contract.
export type { VolumeUsage, TrashUsage } from '../wire/types.js';
