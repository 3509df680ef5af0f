#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { startupSnapshot } from 'node:v8';
import { defaultOptions, type EnvdOptions } from './config.ts';
import { startEnvd } from './server.ts';

/**
 * envd's entry. Two ways in:
 * - `node envd.mjs [flags]`: the ESM bundle runs main() at once (host mode for tests and
 *   benchmarks, or guest mode when the V8 startup snapshot cannot be used);
 * - `node --snapshot-blob envd.blob` in the guest: the image build ran the CommonJS bundle
 *   under `--build-snapshot` inside a VM of the same CPU model, so every module is already
 *   evaluated in the blob and main() is the snapshot's deserialize entry (see build.ts and
 *   @wrenn/images envd-snapshot.ts). Nothing below may read the environment, the clock or
 *   the arguments at module level: that would freeze build-time values into the blob.
 */
function main(): void {
  // No arguments = guest mode (the image's init runs envd without any). `--host` or any
  // host-only flag selects host mode for tests and benchmarks.
  const { values } = parseArgs({
    options: {
      host: { type: 'boolean', default: false },
      port: { type: 'string' },
      listen: { type: 'string' },
      'home-root': { type: 'string' },
      'default-user': { type: 'string' },
      'output-buffer': { type: 'string' },
    },
    strict: true,
  });

  const mode = values.host || values['home-root'] ? 'host' : 'guest';
  const opts: EnvdOptions = defaultOptions(mode);
  if (values.port) opts.port = Number(values.port);
  if (values.listen) opts.host = values.listen;
  if (values['home-root']) opts.homeRoot = values['home-root'];
  if (values['default-user']) opts.defaultUser = values['default-user'];
  if (values['output-buffer']) opts.outputBufferBytes = Number(values['output-buffer']);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    console.error(`envd: invalid --port ${values.port}`);
    process.exit(2);
  }

  startEnvd(opts).then(
    (envd) => {
      // A clean exit on SIGTERM/SIGINT (tests, benchmarks, `--cpu-prof` need one).
      for (const sig of ['SIGTERM', 'SIGINT'] as const) {
        process.once(sig, () => {
          void envd.close().finally(() => process.exit(0));
          setTimeout(() => process.exit(0), 2000).unref();
        });
      }
    },
    (e) => {
      console.error('envd: failed to start:', e);
      process.exit(1);
    },
  );
}

// No top-level await: the snapshot entry is a CommonJS bundle of this file.
if (startupSnapshot.isBuildingSnapshot()) startupSnapshot.setDeserializeMainFunction(main);
else main();
