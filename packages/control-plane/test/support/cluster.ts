import type { StartControlPlaneOptions } from '../../src/index.ts';
import { type DialectName, startTestControlPlane, type TestControlPlane } from './control-plane.ts';
import { type FakeAgent, startFakeAgent } from './fake-agent.ts';
import type { TestPostgres } from './postgres.ts';

/** A control plane with `agents` fake hosts registered and heartbeating, plus a second team. */
export interface TestCluster {
  t: TestControlPlane;
  agents: FakeAgent[];
  /** Key of team `other`, to prove isolation. */
  otherKey: string;
  heartbeatAll(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestCluster(
  dialect: DialectName,
  pg: TestPostgres | undefined,
  opts: {
    agents?: number;
    capacity?: { vcpus: number; memoryMb: number; diskMb: number };
    cp?: Partial<StartControlPlaneOptions>;
  } = {},
): Promise<TestCluster> {
  const t = await startTestControlPlane(dialect, pg, opts.cp);
  const agents: FakeAgent[] = [];
  for (let i = 0; i < (opts.agents ?? 1); i++) {
    const agent = await startFakeAgent({ capacity: opts.capacity });
    const tok = await t.api('POST', '/v1/hosts/tokens');
    await agent.register(t.url, tok.body.token);
    agents.push(agent);
  }
  const other = await t.api('POST', '/v1/keys', { body: { name: 'other', teamId: 'other' } });
  if (other.status !== 201)
    throw new Error(`could not create the second team's key: ${JSON.stringify(other.body)}`);
  const heartbeatAll = async () => {
    for (const a of agents) {
      const r = await a.heartbeat(t.url);
      if (r.status !== 200) throw new Error(`heartbeat failed: ${r.status}`);
    }
  };
  await heartbeatAll();
  return {
    t,
    agents,
    otherKey: other.body.key,
    heartbeatAll,
    async close() {
      await t.close();
      for (const a of agents) await a.close();
    },
  };
}
