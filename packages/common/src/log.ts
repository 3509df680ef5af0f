import pino from 'pino';

/** Structured logger; WRENN_LOG_LEVEL sets the level (default info, `silent` in tests). */
export function createLogger(name: string, level = process.env.WRENN_LOG_LEVEL ?? 'info') {
  return pino({ name, level });
}

export type Logger = ReturnType<typeof createLogger>;
