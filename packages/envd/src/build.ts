import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, type Plugin } from 'esbuild';
import { buildClockAddon, clockAddonHash } from './native-build.ts';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// node-pty is a native addon: it stays outside the bundle and ships beside it as
// node_modules/node-pty/{package.json, lib/*.js, build/Release/pty.node}, so the bundle's
// `import('node-pty')` resolves through ordinary node_modules lookup from outDir.
const nodePtyDir = dirname(require.resolve('node-pty/package.json'));

/**
 * protobuf-es encodes `bytes` for the JSON codec one character at a time; the e2b SDK
 * speaks JSON, so every byte of process output goes through it. In the bundle, swap in
 * Node's native base64 (same alphabets; `url` is unpadded in both).
 */
const nativeBase64: Plugin = {
  name: 'wrenn-native-base64',
  setup(b) {
    b.onLoad(
      { filter: /@bufbuild[\\/]protobuf[\\/]dist[\\/]esm[\\/]wire[\\/]base64-encoding\.js$/ },
      async (args) => {
        const src = await readFile(args.path, 'utf8');
        const marker = 'export function base64Encode(';
        if (!src.includes(marker))
          throw new Error(
            `${args.path}: base64Encode not found; update the wrenn-native-base64 plugin`,
          );
        const contents = `${src.replace(marker, 'function base64EncodeJs(')}
export function base64Encode(bytes, encoding = "std") {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding == "std" ? "base64" : "base64url");
}
`;
        return { contents, loader: 'js' };
      },
    );
  },
};

function bundleOptions(): BuildOptions {
  return {
    entryPoints: [join(here, 'main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['node-pty'],
    // @wrenn/common's index pulls pino; envd imports its modules by path and logs JSON lines itself.
    // Parse/compile time is most of envd's start inside an emulated guest: ship it small.
    minify: true,
    legalComments: 'none',
    // CommonJS dependencies call require() for Node builtins; give the ESM bundle one.
    banner: {
      js: "import { createRequire as __wrennCreateRequire } from 'node:module'; const require = __wrennCreateRequire(import.meta.url);",
    },
    logLevel: 'silent',
    plugins: [nativeBase64],
    // Source-path comments in the bundle are relative to this: fixed, so the hash is too.
    absWorkingDir: here,
  };
}

/** The CommonJS bundle the image build turns into a V8 startup snapshot (envd.blob). */
export const SNAPSHOT_ENTRY = 'envd-snapshot.cjs';

/**
 * `node --build-snapshot` runs a CommonJS file whose require() knows only builtins, some of
 * which (http, http2 via http, child_process, module) cannot be loaded into a snapshot.
 * This shim hands those out as proxies that load on first use (at run time, after the blob
 * is deserialized: envd touches none of them at module level), and resolves non-builtins
 * (node-pty, the clock addon) from the directory of the blob, i.e. /opt/wrenn/envd.
 */
const SNAPSHOT_BANNER = `var __wrennEnvd = { get url() {
  const a = process.execArgv, i = a.findIndex((x) => x === "--snapshot-blob" || x.startsWith("--snapshot-blob="));
  const file = i < 0 ? __filename : a[i].includes("=") ? a[i].slice(a[i].indexOf("=") + 1) : a[i + 1];
  return require("node:url").pathToFileURL(require("node:path").resolve(file)).href;
} };
var require = ((req) => {
  const lazy = new Set(["http", "http2", "https", "child_process", "module"]);
  return (id) => {
    if (lazy.has(id.replace(/^node:/, ""))) {
      let m;
      const mod = () => (m ??= req(id));
      return new Proxy({}, {
        get: (_, p) => mod()[p],
        has: (_, p) => p in mod(),
        ownKeys: () => Reflect.ownKeys(mod()),
        getOwnPropertyDescriptor: (_, p) => { const d = Object.getOwnPropertyDescriptor(mod(), p); if (d) d.configurable = true; return d; },
      });
    }
    try { return req(id); } catch (e) {
      if (e?.code !== "MODULE_NOT_FOUND") throw e;
      return req("node:module").createRequire(__wrennEnvd.url)(id);
    }
  };
})(require);`;

function snapshotEntryOptions(): BuildOptions {
  return {
    ...bundleOptions(),
    format: 'cjs',
    banner: { js: SNAPSHOT_BANNER },
    define: { 'import.meta.url': '__wrennEnvd.url' },
    // import('node-pty') becomes require('node-pty'): a snapshot has no ESM loader.
    supported: { 'dynamic-import': false },
  };
}

/** Both bundles (envd.mjs and the snapshot entry) for `outDir`, in memory. */
async function bundle(outDir: string) {
  const results = await Promise.all([
    build({ ...bundleOptions(), outfile: join(outDir, 'envd.mjs'), write: false }),
    build({ ...snapshotEntryOptions(), outfile: join(outDir, SNAPSHOT_ENTRY), write: false }),
  ]);
  return results.flatMap((r) => r.outputFiles);
}

async function nodePtyFiles(): Promise<{ from: string; to: string }[]> {
  const lib = join(nodePtyDir, 'lib');
  const libJs = (await readdir(lib)).filter((f) => f.endsWith('.js') && !f.endsWith('.test.js'));
  const rels = ['package.json', 'build/Release/pty.node', ...libJs.map((f) => `lib/${f}`)];
  const sharedDir = join(lib, 'shared');
  for (const f of await readdir(sharedDir).catch(() => [] as string[])) {
    if (f.endsWith('.js') && !f.endsWith('.test.js')) rels.push(`lib/shared/${f}`);
  }
  return rels.map((rel) => ({
    from: join(nodePtyDir, rel),
    to: join('node_modules', 'node-pty', rel),
  }));
}

/**
 * Bundle envd into `outDir/envd.mjs` with node-pty and the clock addon beside it. The directory is what the
 * images put at /opt/wrenn/envd/ and run as `node /opt/wrenn/envd/envd.mjs` (guest mode).
 * `envd-snapshot.cjs` beside it is the same code as CommonJS for `node --build-snapshot`.
 * Returns the written files (relative to outDir) and the bundle hash (see envdBundleHash).
 *
 * @example await buildEnvd('/tmp/rootfs/opt/wrenn/envd')
 */
export async function buildEnvd(outDir: string): Promise<{ files: string[]; hash: string }> {
  await rm(join(outDir, 'node_modules', 'node-pty'), { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const outputs = await bundle(outDir);
  const files: string[] = [];
  for (const out of outputs) {
    await writeFile(out.path, out.contents);
    files.push(relative(outDir, out.path));
  }
  for (const { from, to } of await nodePtyFiles()) {
    await mkdir(dirname(join(outDir, to)), { recursive: true });
    await copyFile(from, join(outDir, to));
    files.push(to);
  }
  files.push(await buildClockAddon(outDir));
  return { files, hash: await hashOutputs(outputs.map((o) => o.contents)) };
}

async function hashOutputs(bundles: Uint8Array[]): Promise<string> {
  const h = createHash('sha256');
  for (const b of bundles) h.update(b);
  for (const { from, to } of await nodePtyFiles()) {
    h.update(to);
    h.update(await readFile(from));
  }
  h.update(await clockAddonHash());
  return h.digest('hex');
}

/**
 * sha256 of what buildEnvd would write (bundle bytes + node-pty files), computed in memory.
 * Image manifests store it to notice that envd changed and the image must be rebuilt.
 */
export async function envdBundleHash(): Promise<string> {
  return hashOutputs((await bundle(here)).map((o) => o.contents));
}

/** Alias kept for callers that think of it as "the envd source changed". */
export const envdSourceHash = envdBundleHash;
