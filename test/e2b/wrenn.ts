import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { type RunningAgent, startAgent } from '@wrenn/agent';
import { destroySandbox } from '@wrenn/agent/lifecycle/destroy.ts';
import { createLogger } from '@wrenn/common';
import { type RunningControlPlane, startControlPlane } from '@wrenn/control-plane';

const execFileP = promisify(execFile);

/** A real Wrenn for a test: control plane + one agent with QEMU VMs, in a temp WRENN_DIR. */
export interface TestWrenn {
  url: string;
  dir: string;
  /** A non-admin key of a fresh team, as an E2B user would have. */
  apiKey: string;
  cp: RunningControlPlane;
  agent: RunningAgent;
  /** Points the e2b SDK at this Wrenn the documented way (env vars); returns the undo. */
  useAsE2b(): () => void;
  close(): Promise<void>;
}

/**
 * Starts Wrenn the way `wrenn up` does (control plane, then an agent registered with a
 * one-time token), on a temp WRENN_DIR whose `kernels/` and `images/public/` are the cached
 * ones built by test/global-setup.ts (no image is rebuilt), and whose accelerator verdict is
 * the cached one when there is one (no second KVM probe).
 */
export async function startWrenn(
  cachedDir: string | undefined,
  opts: { sandboxDomain?: string } = {},
): Promise<TestWrenn> {
  if (!cachedDir)
    throw new Error("no cached WRENN_DIR: test/global-setup.ts must provide inject('wrennDir')");
  for (const p of ['kernels', 'images/public/base']) {
    if (!existsSync(join(cachedDir, p)))
      throw new Error(
        `the cached WRENN_DIR ${cachedDir} has no ${p}: the base image was not built`,
      );
  }
  cachedDir = resolve(cachedDir);
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-e2b-'));
  // Real directories, files symlinked to the cache (`cp -as`): what the agent writes (the
  // template snapshot, whose disk records its backing file's path) stays in this temp dir
  // and dies with it; nothing is written into the shared cache.
  await mkdir(join(dir, 'images'));
  await execFileP('cp', ['-as', join(cachedDir, 'kernels'), join(dir, 'kernels')]);
  await execFileP('cp', [
    '-as',
    join(cachedDir, 'images', 'public'),
    join(dir, 'images', 'public'),
  ]);
  if (existsSync(join(cachedDir, 'cache', 'accelerator.json'))) {
    await mkdir(join(dir, 'cache'));
    await copyFile(
      join(cachedDir, 'cache', 'accelerator.json'),
      join(dir, 'cache', 'accelerator.json'),
    );
  }

  const log = createLogger('e2b-test', process.env.WRENN_TEST_LOG ?? 'warn');
  const cp = await startControlPlane({
    dir,
    port: 0,
    log,
    ...(opts.sandboxDomain ? { sandboxDomain: opts.sandboxDomain } : {}),
  });
  let agent: RunningAgent | undefined;
  try {
    const admin = await cp.core.keys.authenticate(cp.adminKey!);
    const { token } = await cp.core.hosts.createRegistrationToken(admin);
    agent = await startAgent({
      dir,
      hostToken: 'unused-until-registered',
      controlPlaneUrl: cp.url,
      registrationToken: token,
      heartbeatMs: 1000,
      metricsIntervalMs: 1000,
      log: createLogger('e2b-test-agent', process.env.WRENN_TEST_LOG ?? 'warn'),
    });
    const { key } = await cp.core.keys.create(admin, { name: 'e2b-compat', teamId: 'e2b-compat' });
    const running = agent;
    return {
      url: cp.url,
      dir,
      apiKey: key,
      cp,
      agent: running,
      useAsE2b() {
        const saved = {
          url: process.env.E2B_API_URL,
          sbx: process.env.E2B_SANDBOX_URL,
          key: process.env.E2B_API_KEY,
        };
        process.env.E2B_API_URL = cp.url;
        process.env.E2B_SANDBOX_URL = cp.url;
        process.env.E2B_API_KEY = key;
        return () => {
          restore('E2B_API_URL', saved.url);
          restore('E2B_SANDBOX_URL', saved.sbx);
          restore('E2B_API_KEY', saved.key);
        };
      },
      async close() {
        // Kill what this test made: the agent's close() would leave VMs for re-adoption.
        for (const id of [...running.manager.boxes.keys()])
          await destroySandbox(running.manager, id).catch(() => undefined);
        await running.close();
        await cp.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await agent?.close().catch(() => undefined);
    await cp.close();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

function restore(name: string, value: string | undefined) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
