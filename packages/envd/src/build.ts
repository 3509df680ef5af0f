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
 * Returns the written files (relative to outDir) and the bundle hash (see envdBundleHash).
 *
 * @example await buildEnvd('/tmp/rootfs/opt/wrenn/envd')
 */
export async function buildEnvd(outDir: string): Promise<{ files: string[]; hash: string }> {
  await rm(join(outDir, 'node_modules', 'node-pty'), { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const result = await build({
    ...bundleOptions(),
    outfile: join(outDir, 'envd.mjs'),
    write: false,
  });
  const files: string[] = [];
  for (const out of result.outputFiles) {
    await writeFile(out.path, out.contents);
    files.push(relative(outDir, out.path));
  }
  for (const { from, to } of await nodePtyFiles()) {
    await mkdir(dirname(join(outDir, to)), { recursive: true });
    await copyFile(from, join(outDir, to));
    files.push(to);
  }
  files.push(await buildClockAddon(outDir));
  return { files, hash: await hashOutputs(result.outputFiles.map((o) => o.contents)) };
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
  const result = await build({ ...bundleOptions(), outfile: join(here, 'envd.mjs'), write: false });
  return hashOutputs(result.outputFiles.map((o) => o.contents));
}

/** Alias kept for callers that think of it as "the envd source changed". */
export const envdSourceHash = envdBundleHash;
