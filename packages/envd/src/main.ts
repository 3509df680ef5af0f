#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { defaultOptions, type EnvdOptions } from './config.ts';
import { startEnvd } from './server.ts';

// No arguments = guest mode (the image's init runs `node envd.mjs`). `--host` or any
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

try {
  const envd = await startEnvd(opts);
  // A clean exit on SIGTERM/SIGINT (tests, benchmarks, `--cpu-prof` need one).
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      void envd.close().finally(() => process.exit(0));
      setTimeout(() => process.exit(0), 2000).unref();
    });
  }
} catch (e) {
  console.error('envd: failed to start:', e);
  process.exit(1);
}
