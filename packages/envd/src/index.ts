export { buildEnvd, envdBundleHash, envdSourceHash } from './build.ts';
export { envdClients } from './client.ts';
export { defaultOptions, ENVD_PORT, ENVD_VERSION, type EnvdOptions } from './config.ts';
export { type RunningEnvd, startEnvd } from './server.ts';
