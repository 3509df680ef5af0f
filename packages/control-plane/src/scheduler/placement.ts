/**
 * Placement is a pure function so its rule can be tested on its own:
 * pick the host whose *scarcest* resource (RAM, CPU or disk) is least used after placing
 * the sandbox; a host where any resource would exceed capacity is not a candidate
 * (admission control: the cluster never overcommits).
 */
export interface Resources {
  vcpus: number;
  memoryMb: number;
  diskMb: number;
}

export interface HostLoad {
  hostId: string;
  capacity: Resources;
  used: Resources;
}

export interface Placement {
  hostId: string;
  /** Highest utilisation ratio across the three resources after placement (0..1). */
  score: number;
}

const DIMENSIONS = ['vcpus', 'memoryMb', 'diskMb'] as const;

/** Utilisation of the scarcest resource if `req` were added, or null when it does not fit. */
export function scarcestAfter(host: HostLoad, req: Resources): number | null {
  let worst = 0;
  for (const d of DIMENSIONS) {
    const cap = host.capacity[d];
    const after = host.used[d] + req[d];
    if (cap <= 0 || after > cap) return null;
    worst = Math.max(worst, after / cap);
  }
  return worst;
}

export function chooseHost(hosts: HostLoad[], req: Resources): Placement | null {
  let best: Placement | null = null;
  for (const h of hosts) {
    const score = scarcestAfter(h, req);
    if (score === null) continue;
    // Ties go to the smaller id so the choice is deterministic.
    if (!best || score < best.score || (score === best.score && h.hostId < best.hostId)) {
      best = { hostId: h.hostId, score };
    }
  }
  return best;
}

/** Elementwise max: the DB's reservations and the agent's reported use both bound what is free. */
export function maxResources(a: Resources, b: Resources): Resources {
  return {
    vcpus: Math.max(a.vcpus, b.vcpus),
    memoryMb: Math.max(a.memoryMb, b.memoryMb),
    diskMb: Math.max(a.diskMb, b.diskMb),
  };
}
