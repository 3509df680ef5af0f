import { defineConfig } from 'vitest/config';

// Two projects: `unit` needs nothing but Node; `vm` boots real QEMU guests and shares
// images built once by test/global-setup.ts (cached under .cache/ between runs).
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'packages/*/test/unit/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'vm',
          include: ['packages/*/test/{integration,e2e,crash}/**/*.test.ts', 'test/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 900_000,
          // Two cores: VM tests run one file at a time so TCG guests are not starved.
          fileParallelism: false,
        },
      },
    ],
  },
});
