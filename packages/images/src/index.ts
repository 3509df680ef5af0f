export * from './build.ts';
export * from './catalog.ts';
export * from './cmdline.ts';
export * from './list.ts';
export * from './manifest.ts';
export * from './progress.ts';
