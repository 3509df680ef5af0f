import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { errorMessage, WrennError } from '@wrenn/common';
import { requireTool, run, TOOLS } from './exec.ts';
import { sha256FileMemo } from './hash.ts';

type EnvdBuilder = typeof import('@wrenn/envd/build.ts');

/**
 * envd's bundler. WRENN_ENVD_BUILD may name another build.ts (e.g. a known-good checkout)
 * so images can be built while the envd sources are mid-change.
 */
async function envdBuilder(): Promise<EnvdBuilder> {
  const override = process.env.WRENN_ENVD_BUILD;
  return (
    override ? import(pathToFileURL(override).href) : import('@wrenn/envd/build.ts')
  ) as Promise<EnvdBuilder>;
}

/** Run an envd bundling step; esbuild's multi-line failure becomes one clear line. */
async function envdStep<T>(fn: (b: EnvdBuilder) => Promise<T>): Promise<T> {
  try {
    return await fn(await envdBuilder());
  } catch (e) {
    const first =
      errorMessage(e)
        .split('\n')
        .find((l) => /ERROR|error/.test(l)) ?? errorMessage(e).split('\n')[0];
    throw new WrennError('internal', `cannot bundle envd: ${first?.trim()}`, { cause: e });
  }
}

/** Where the injected runtime lives inside every rootfs (the guest contract). */
export const GUEST_OPT = 'opt/wrenn';

export interface NodeRuntime {
  node: string;
  version: string;
  loader: string;
  libs: string[];
}

/**
 * The host's node binary and what it needs to run anywhere: its shared libraries and the
 * dynamic loader, found with ldd. The guest runs it through this loader, so the template's
 * own libc (or lack of one) never matters.
 */
export async function hostNodeRuntime(node = process.execPath): Promise<NodeRuntime> {
  const { stdout } = await run(TOOLS.ldd, await requireTool(TOOLS.ldd), [node]);
  const libs: string[] = [];
  let loader = '';
  for (const line of stdout.split('\n')) {
    const arrow = line.match(/=>\s*(\/\S+)/);
    if (arrow) libs.push(arrow[1]!);
    else if (/^\s*\/\S*ld-linux\S*/.test(line)) loader = line.trim().split(/\s+/)[0]!;
  }
  if (!loader) throw new WrennError('internal', `ldd found no dynamic loader for ${node}`);
  return { node, version: process.version, loader, libs };
}

/** Hashes of everything the runtime copies: part of every image's inputs. */
export async function runtimeInputs(rt: NodeRuntime, busybox: string) {
  const libs: Record<string, string> = {};
  for (const lib of rt.libs) libs[basename(lib)] = await sha256FileMemo(lib);
  return {
    node: { version: rt.version, sha256: await sha256FileMemo(rt.node) },
    loader: await sha256FileMemo(rt.loader),
    libs,
    busybox: await sha256FileMemo(busybox),
    envd: await envdStep((b) => b.envdBundleHash()),
  };
}

/**
 * Fill `<root>/opt/wrenn/`: `init` (the guest init recipe), `bin/busybox` (what init runs
 * on), `runtime/` (node + libs + loader) and `envd/` (the bundle from buildEnvd).
 */
export async function installRuntime(opts: {
  root: string;
  runtime: NodeRuntime;
  busybox: string;
  guestInit: string;
}): Promise<{ envdHash: string }> {
  const opt = join(opts.root, GUEST_OPT);
  const rtDir = join(opt, 'runtime');
  await mkdir(join(rtDir, 'lib'), { recursive: true });
  await mkdir(join(opt, 'bin'), { recursive: true });
  await copyFile(opts.guestInit, join(opt, 'init'));
  await chmod(join(opt, 'init'), 0o755);
  await copyFile(opts.busybox, join(opt, 'bin', 'busybox'));
  await chmod(join(opt, 'bin', 'busybox'), 0o755);
  await copyFile(opts.runtime.node, join(rtDir, 'node'));
  await chmod(join(rtDir, 'node'), 0o755);
  await copyFile(opts.runtime.loader, join(rtDir, 'ld-linux-x86-64.so.2'));
  await chmod(join(rtDir, 'ld-linux-x86-64.so.2'), 0o755);
  for (const lib of opts.runtime.libs) await copyFile(lib, join(rtDir, 'lib', basename(lib)));
  const { hash } = await envdStep((b) => b.buildEnvd(join(opt, 'envd')));
  return { envdHash: hash };
}
