import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { WrennError } from '@wrenn/common';
import { requireTool, run, TOOLS } from './exec.ts';

/** A concrete Debian package, resolved through the machine's own apt configuration. */
export interface DebPackage {
  name: string;
  version: string;
}

let updatedOnce = false;

/**
 * Follow a metapackage (e.g. `linux-image-cloud-amd64`) to the versioned package it
 * depends on, and that package's candidate version. When apt knows nothing yet (fresh
 * machine, empty lists) and we are root, `apt-get update` once and retry.
 */
export async function resolveMetapackage(meta: string, prefix: string): Promise<DebPackage> {
  try {
    return await resolveOnce(meta, prefix);
  } catch (e) {
    if (updatedOnce || process.getuid?.() !== 0) throw e;
    updatedOnce = true;
    await run(TOOLS.aptGet, await requireTool(TOOLS.aptGet), ['update', '-qq']);
    return resolveOnce(meta, prefix);
  }
}

async function resolveOnce(meta: string, prefix: string): Promise<DebPackage> {
  const aptCache = await requireTool(TOOLS.aptCache);
  const deps = await run(TOOLS.aptCache, aptCache, ['depends', '--no-recommends', meta]).catch(
    () => ({ stdout: '' }),
  );
  const name = deps.stdout
    .split('\n')
    .map((l) => l.trim().match(/^Depends: (\S+)/)?.[1])
    .find((n) => n?.startsWith(prefix));
  if (!name) {
    throw new WrennError(
      'failed_precondition',
      `apt does not know ${meta}: run apt-get update (as root) so the machine's apt sources are read`,
    );
  }
  return { name, version: await candidateVersion(name) };
}

export async function candidateVersion(name: string): Promise<string> {
  const aptCache = await requireTool(TOOLS.aptCache);
  const { stdout } = await run(TOOLS.aptCache, aptCache, ['policy', name]);
  const version = stdout.match(/Candidate: (\S+)/)?.[1];
  if (!version || version === '(none)') {
    throw new WrennError('failed_precondition', `apt has no installable version of ${name}`);
  }
  return version;
}

/**
 * Download a package's .deb into `dir` (kept as a cache: same name and version → no
 * download) and return its path. Uses the machine's apt sources; never names a mirror.
 */
export async function downloadDeb(pkg: DebPackage, dir: string): Promise<string> {
  const find = async () => {
    const epochless = pkg.version.replace(/^\d+:/, '');
    const names = await readdir(dir).catch(() => [] as string[]);
    const hit = names.find(
      (f) =>
        f.startsWith(`${pkg.name}_`) &&
        f.endsWith('.deb') &&
        decodeURIComponent(f).includes(`_${epochless}_`),
    );
    return hit ? join(dir, hit) : undefined;
  };
  const cached = await find();
  if (cached) return cached;
  const aptGet = await requireTool(TOOLS.aptGet);
  // As root, apt drops to the `_apt` user for downloads, which cannot write our cache dir.
  const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
  await run(TOOLS.aptGet, aptGet, [...sandbox, 'download', '-qq', `${pkg.name}=${pkg.version}`], {
    cwd: dir,
  });
  const got = await find();
  if (!got) throw new WrennError('internal', `apt-get download ${pkg.name} left no .deb in ${dir}`);
  return got;
}

/**
 * Changes whenever what apt-cache would answer can change: `apt-get update` rewrites the
 * lists directory, an edit touches the sources or preferences.
 */
export async function aptStateKey(): Promise<string> {
  const paths = [
    '/var/lib/apt/lists',
    '/etc/apt/sources.list',
    '/etc/apt/sources.list.d',
    '/etc/apt/preferences.d',
  ];
  for (const f of await readdir('/etc/apt/sources.list.d').catch(() => [] as string[])) {
    paths.push(join('/etc/apt/sources.list.d', f));
  }
  const parts: string[] = [];
  for (const p of paths) {
    const st = await stat(p).catch(() => undefined);
    parts.push(`${p}:${st ? `${st.mtimeMs}:${st.size}` : '-'}`);
  }
  return parts.join('|');
}

/** The machine's apt source files, as mmdebstrap takes them (one MIRROR argument each). */
export async function hostAptSources(): Promise<string[]> {
  const files: string[] = [];
  const list = '/etc/apt/sources.list';
  const d = '/etc/apt/sources.list.d';
  if ((await stat(list).catch(() => undefined))?.size) files.push(list);
  for (const f of (await readdir(d).catch(() => [] as string[])).sort()) {
    if (f.endsWith('.sources') || f.endsWith('.list')) files.push(join(d, f));
  }
  if (!files.length) {
    throw new WrennError(
      'failed_precondition',
      'this machine has no apt sources (/etc/apt/sources.list[.d])',
    );
  }
  return files;
}
