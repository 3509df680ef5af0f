// The agent's RPC edge uses the shared WrennError → Connect mapping.
export { toConnectError } from '@wrenn/common/connect-errors.ts';
