#!/usr/bin/env node
// The `wrenn` command. Runs the TypeScript sources through tsx: no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
await main(process.argv);
