/**
 * Control plane overhead. Run: `npm run bench -- api`.
 *
 * Targets (issue 5), each measured against its floor in the same run:
 *   - create through the API ≤ 1.15× create directly on the agent (real VMs, `minimal`);
 *   - exec round trip through the gateway ≤ 1.3× the same call straight to the agent's proxy;
 *   - GET /v1/sandboxes (a 100-row page) with 10,000 sandbox rows: p50 ≤ 50 ms on SQLite
 *     and on PostgreSQL (a throwaway cluster started here).
 * Figures are medians; the VM part needs the `minimal` image (built here when missing,
 * under $WRENN_BENCH_DIR or .cache/wrenn-bench) and runs under whatever accelerator the
 * agent probes (TCG on CI).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger, newId } from '@wrenn/common';
import { type RunningControlPlane, startControlPlane } from '@wrenn/control-plane';
import { AgentPool } from '@wrenn/control-plane/agents/pool.ts';
import { execCommand } from '@wrenn/control-plane/envd/client.ts';
import { startPostgres } from '../packages/control-plane/test/support/postgres.ts';

const ROWS = 10_000;
const LIST_CALLS = 60;
const CREATES = 5;
const EXECS = 40;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Inserts `ROWS` sandbox rows (with metadata) for the admin's team, in batches. */
async function seed(cp: RunningControlPlane): Promise<void> {
  const db = cp.core.db.kysely;
  const now = Date.now();
  const BATCH = 500;
  for (let i = 0; i < ROWS; i += BATCH) {
    const rows = Array.from({ length: BATCH }, (_, j) => ({
      id: newId(),
      team_id: 'default',
      host_id: 'benchhost',
      template_id: 'base',
      template_team_id: 'public',
      status: (j % 3 === 0 ? 'paused' : 'running') as 'paused' | 'running',
      vcpus: 1,
      memory_mb: 512,
      disk_mb: 2048,
      timeout_seconds: 300,
      on_timeout: 'kill' as const,
      auto_resume: 0,
      metadata: JSON.stringify({ batch: String(i / BATCH), n: String(i + j) }),
      envd_access_token: 'x',
      error: null,
      created_at: now - (i + j),
      started_at: now,
      end_at: null,
      last_active_at: now,
      status_changed_at: now,
    }));
    await db.insertInto('sandboxes').values(rows).execute();
    await db
      .insertInto('sandbox_metadata')
      .values(
        rows.flatMap((r) =>
          Object.entries(JSON.parse(r.metadata) as Record<string, string>).map(([key, value]) => ({
            sandbox_id: r.id,
            key,
            value,
          })),
        ),
      )
      .execute();
  }
}

async function listBench(
  dialect: 'sqlite' | 'postgres',
  databaseUrl: string,
): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), `wrenn-bench-${dialect}-`));
  const cp = await startControlPlane({
    dir,
    databaseUrl,
    port: 0,
    log: createLogger('bench', 'silent'),
    reconcile: false,
    rateLimit: { perSecond: 1e6, burst: 1e6 },
  });
  try {
    await seed(cp);
    const get = (q: string) => async () => {
      const r = await fetch(`${cp.url}/v1/sandboxes${q}`, {
        headers: { 'x-api-key': cp.adminKey! },
      });
      if (r.status !== 200) throw new Error(`list ${q}: ${r.status}`);
      await r.arrayBuffer();
    };
    const measure = async (fn: () => Promise<void>) => {
      for (let i = 0; i < 5; i++) await fn(); // warm up connections and statement caches
      const t: number[] = [];
      for (let i = 0; i < LIST_CALLS; i++) t.push(await timed(fn));
      return median(t);
    };
    const firstPage = await measure(get('?limit=100'));
    const deepPage = await (async () => {
      // The 50th page: cursor paging must not get slower with depth.
      let token = '';
      for (let p = 0; p < 50; p++) {
        const r = (await (
          await fetch(`${cp.url}/v1/sandboxes?limit=100${token ? `&nextToken=${token}` : ''}`, {
            headers: { 'x-api-key': cp.adminKey! },
          })
        ).json()) as { nextToken: string };
        token = r.nextToken;
      }
      return measure(get(`?limit=100&nextToken=${token}`));
    })();
    const filtered = await measure(get(`?limit=100&metadata=${encodeURIComponent('batch=7')}`));
    const health = await measure(async () => {
      await (await fetch(`${cp.url}/health`)).arrayBuffer();
    });
    return {
      [`${dialect}_list_first_page_p50_ms`]: firstPage,
      [`${dialect}_list_page_50_p50_ms`]: deepPage,
      [`${dialect}_list_metadata_filter_p50_ms`]: filtered,
      [`${dialect}_health_p50_ms`]: health,
    };
  } finally {
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Create and exec with a real agent (in-process) behind a real control plane. */
async function vmBench(): Promise<Record<string, number>> {
  const { startAgent } = await import('@wrenn/agent');
  const { buildImage } = await import('@wrenn/images');
  const dir = resolve(
    process.env.WRENN_BENCH_DIR ?? join(import.meta.dirname, '..', '.cache', 'wrenn-bench'),
  );
  mkdirSync(dir, { recursive: true });
  await buildImage('minimal', { dir });
  const cpDir = mkdtempSync(join(tmpdir(), 'wrenn-bench-cp-'));
  const log = createLogger('bench', 'silent');
  const cp = await startControlPlane({
    dir: cpDir,
    databaseUrl: '',
    port: 0,
    log,
    rateLimit: { perSecond: 1e6, burst: 1e6 },
  });
  const key = cp.adminKey!;
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${cp.url}${path}`, {
      method,
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const { token } = await api('POST', '/v1/hosts/tokens');
  const agent = await startAgent({
    dir,
    hostToken: 'bench-bootstrap',
    controlPlaneUrl: cp.url,
    registrationToken: token,
    log,
  });
  const results: Record<string, number> = {};
  try {
    const host = await cp.core.db.kysely.selectFrom('hosts').selectAll().executeTakeFirstOrThrow();
    // The same Connect client the control plane uses, pointed straight at the agent.
    const direct = new AgentPool().for(host);

    // Create: alternate API and direct so drift on a shared machine hits both alike.
    const viaApi: number[] = [];
    const viaAgent: number[] = [];
    for (let i = 0; i < CREATES; i++) {
      let id = '';
      viaApi.push(
        await timed(async () => {
          id = (await api('POST', '/v1/sandboxes', { templateId: 'minimal', timeoutSeconds: 600 }))
            .sandboxId;
        }),
      );
      await api('DELETE', `/v1/sandboxes/${id}`);
      const directId = newId();
      viaAgent.push(
        await timed(() =>
          direct.create({
            sandboxId: directId,
            teamId: 'default',
            templateId: 'minimal',
            vcpus: 1,
            memoryMb: 512,
            diskMb: 2048,
            timeoutSeconds: 600,
          }),
        ),
      );
      await direct.destroy({ sandboxId: directId });
    }
    results.create_api_ms = median(viaApi);
    results.create_agent_direct_ms = median(viaAgent);
    results.create_ratio = results.create_api_ms / results.create_agent_direct_ms;

    // Exec round trip: `true` through envd, via the gateway vs straight to the agent's proxy.
    const sbx = await api('POST', '/v1/sandboxes', { templateId: 'minimal', timeoutSeconds: 600 });
    // The same envd client for both paths; only the base URL and routing headers differ.
    const execVia = (baseUrl: string, headers: Record<string, string>) => async () => {
      const r = await execCommand(
        { baseUrl, headers },
        { argv: ['/bin/true'], timeoutMs: 60_000, maxOutputBytes: 1 << 20 },
      );
      if (r.exitCode !== 0) throw new Error(`exec exited ${r.exitCode}`);
    };
    const gw = execVia(cp.url, {
      'E2b-Sandbox-Id': sbx.sandboxId,
      'E2b-Sandbox-Port': '49983',
      'X-Access-Token': sbx.envdAccessToken,
    });
    const dr = execVia(`${agent.url}/proxy/${sbx.sandboxId}/49983`, {
      'x-wrenn-host-token': host.host_token,
      'X-Access-Token': sbx.envdAccessToken,
    });
    for (let i = 0; i < 5; i++) {
      await gw();
      await dr();
    }
    const g: number[] = [];
    const d: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      g.push(await timed(gw));
      d.push(await timed(dr));
    }
    results.exec_gateway_ms = median(g);
    results.exec_agent_direct_ms = median(d);
    results.exec_ratio = results.exec_gateway_ms / results.exec_agent_direct_ms;
    await api('DELETE', `/v1/sandboxes/${sbx.sandboxId}`);
  } finally {
    await agent.close();
    // The agent leaves VMs for re-adoption on close; the bench created none that outlive it.
    await cp.close();
    rmSync(cpDir, { recursive: true, force: true });
  }
  return results;
}

export async function run(): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  Object.assign(results, await listBench('sqlite', ''));
  const pg = await startPostgres();
  try {
    Object.assign(results, await listBench('postgres', await pg.createDatabase('wrenn_bench')));
  } finally {
    await pg.stop();
  }
  if (process.env.WRENN_BENCH_SKIP_VM !== '1') Object.assign(results, await vmBench());

  const f = (n: number) => (Math.round(n * 100) / 100).toString();
  console.log('control plane bench (medians)');
  for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(36)} ${f(v)}`);
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  for (const d of ['sqlite', 'postgres']) {
    console.log(
      `  target ${d} list p50 ≤ 50 ms: ${verdict(results[`${d}_list_first_page_p50_ms`]! <= 50)}`,
    );
  }
  if (results.create_ratio !== undefined) {
    console.log(`  target create via API ≤ 1.15× direct: ${verdict(results.create_ratio <= 1.15)}`);
    console.log(`  target exec via gateway ≤ 1.3× direct: ${verdict(results.exec_ratio! <= 1.3)}`);
  } else {
    console.log('  VM targets not measured (WRENN_BENCH_SKIP_VM=1)');
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
