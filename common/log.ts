// Structured logs (pino, JSON lines on stdout). Components take a child logger.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(
  component: string,
  level = process.env.KUBESTORAGE_LOG_LEVEL ?? 'info',
): Logger {
  return pino({ level, base: { component } });
}
