// Values test/global-setup.ts provides to the `vm` project's tests.
declare module 'vitest' {
  export interface ProvidedContext {
    /** WRENN_DIR with the `minimal` and `base` images built. */
    wrennDir: string;
  }
}

export {};
