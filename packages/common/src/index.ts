export * from './cc.ts';
export * from './errors.ts';
export * from './fsutil.ts';
export * from './ids.ts';
export * from './log.ts';
export * from './net.ts';
export * from './paths.ts';
