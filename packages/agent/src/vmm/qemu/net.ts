import { freeLoopbackPort } from '@wrenn/common';

// envd is reached the same way from a template build as from a sandbox: one client.
export { waitEnvdHealthy, warmEnvd } from '../../envd-client.ts';
export { freeLoopbackPort };
