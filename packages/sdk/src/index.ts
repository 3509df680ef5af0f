export { execBytes, WrennClient, type WrennClientOptions } from './client.ts';
export { openShell, type ShellOptions, type ShellSession } from './shell.ts';
export type * from './types.ts';
