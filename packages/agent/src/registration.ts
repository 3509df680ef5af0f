import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, type Logger, WrennError, writeFileAtomic } from '@wrenn/common';
import { z } from 'zod';
import type { Manager } from './manager.ts';
import { HOST_TOKEN_HEADER } from './server/auth.ts';

/** `WRENN_DIR/agent.json` (0600): who this agent is to its control plane. */
export const AGENT_JSON = 'agent.json';

const agentJsonSchema = z.object({
  controlPlaneUrl: z.string().url(),
  hostId: z.string().min(1),
  hostToken: z.string().min(1),
});
export type AgentIdentity = z.infer<typeof agentJsonSchema>;

export async function readIdentity(dir: string): Promise<AgentIdentity | undefined> {
  const text = await readFile(join(dir, AGENT_JSON), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const parsed = agentJsonSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new WrennError(
      'failed_precondition',
      `${join(dir, AGENT_JSON)} is corrupt: ${parsed.error.issues[0]?.message}`,
    );
  return parsed.data;
}

/**
 * Register with a one-time token: `POST <cp>/v1/hosts/register` → `{hostId, hostToken}`,
 * stored in agent.json. A restart with agent.json present reuses it and does not register.
 */
export async function registerOrReuse(opts: {
  dir: string;
  controlPlaneUrl: string;
  registrationToken?: string;
  agentUrl: string;
  capacity: { vcpus: number; memoryMb: number; diskMb: number };
}): Promise<AgentIdentity> {
  const existing = await readIdentity(opts.dir);
  if (existing && existing.controlPlaneUrl === opts.controlPlaneUrl) return existing;
  if (!opts.registrationToken) {
    throw new WrennError(
      'failed_precondition',
      `no ${AGENT_JSON} for ${opts.controlPlaneUrl}: pass --register <token>`,
    );
  }
  let res: Response;
  try {
    res = await fetch(new URL('/v1/hosts/register', opts.controlPlaneUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        registrationToken: opts.registrationToken,
        agentUrl: opts.agentUrl,
        capacity: opts.capacity,
      }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new WrennError(
      'unavailable',
      `cannot reach the control plane at ${opts.controlPlaneUrl}: ${errorMessage(e)}`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as {
    hostId?: string;
    hostToken?: string;
    message?: string;
  };
  if (res.status !== 201 && res.status !== 200) {
    throw new WrennError(
      res.status === 401 || res.status === 403 ? 'unauthenticated' : 'unavailable',
      `registration refused (HTTP ${res.status}): ${body.message ?? ''}`,
    );
  }
  const identity = agentJsonSchema.parse({
    controlPlaneUrl: opts.controlPlaneUrl,
    hostId: body.hostId,
    hostToken: body.hostToken,
  });
  await writeFileAtomic(
    join(opts.dir, AGENT_JSON),
    `${JSON.stringify(identity, null, 2)}\n`,
    0o600,
  );
  return identity;
}

/** Heartbeats every `intervalMs`: capacity, load and accelerator. Failures are logged. */
export function startHeartbeat(
  m: Manager,
  id: AgentIdentity,
  log: Logger,
  intervalMs = 5000,
): { stop(): void; beat(): Promise<void> } {
  const beat = async () => {
    try {
      const res = await fetch(new URL(`/v1/hosts/${id.hostId}/heartbeat`, id.controlPlaneUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json', [HOST_TOKEN_HEADER]: id.hostToken },
        body: JSON.stringify({ capacity: m.capacity, load: m.load(), accelerator: m.accelerator }),
        signal: AbortSignal.timeout(Math.max(1000, intervalMs)),
      });
      await res.body?.cancel();
      if (res.status >= 300)
        log.warn({ event: 'heartbeat-refused', status: res.status }, 'heartbeat refused');
    } catch (e) {
      log.warn({ event: 'heartbeat-failed', error: errorMessage(e) }, 'heartbeat failed');
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer), beat };
}
