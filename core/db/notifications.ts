// What the `files` trigger (migrations 0005, 0007) notifies at commit, heard on one connection per process that does
// nothing but LISTEN: `file_settled` (payload: the File's id) and `webhook_deliveries` (new events to make into
// deliveries, or a delivery due again: work for the dispatchers).
// A notification sent while this connection was down is lost, so every (re)connection announces itself
// (`onListening`): whoever waits for something then looks at the database once instead.
import { EventEmitter } from 'node:events';
import pg from 'pg';

export type Channel = 'file_settled' | 'webhook_deliveries';

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;
/**
 * A connection that dies without a reset (a node gone, a NAT entry dropped) would go unnoticed for hours of
 * TCP keepalive, and every waiter would run to its timeout: a query this often proves it alive.
 */
const HEARTBEAT_MS = 15_000;
const HEARTBEAT_TIMEOUT_MS = 5_000;

export class Notifications {
  private client: pg.Client | null = null;
  private closed = false;
  private retryMs = FIRST_RETRY_MS;
  private retry: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly events = new EventEmitter();

  constructor(
    private readonly url: string,
    private readonly channels: readonly Channel[],
    private readonly onError: (err: Error) => void = () => undefined,
  ) {
    this.events.setMaxListeners(0);
  }

  /** Connects and keeps connecting: resolves after the first attempt, whether it succeeded or not. */
  start(): Promise<void> {
    return this.connect();
  }

  /** True while the LISTEN connection is up. */
  get listening(): boolean {
    return this.client !== null;
  }

  on(channel: Channel, listener: (payload: string) => void): () => void {
    this.events.on(channel, listener);
    return () => this.events.off(channel, listener);
  }

  /** After every (re)connection: notifications may have been missed while it was down. */
  onListening(listener: () => void): () => void {
    this.events.on('listening', listener);
    return () => this.events.off('listening', listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    clearInterval(this.heartbeat);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: 5_000,
      application_name: 'file-processor-listen',
      keepAlive: true,
      keepAliveInitialDelayMillis: HEARTBEAT_MS,
      query_timeout: HEARTBEAT_TIMEOUT_MS,
    });
    let lost = false;
    const reconnect = (err?: Error) => {
      if (lost) return;
      lost = true;
      if (err) this.onError(err);
      if (this.client === client) {
        this.client = null;
        clearInterval(this.heartbeat);
      }
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.retry = setTimeout(() => void this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    };
    client.on('error', reconnect);
    client.on('end', () => reconnect());
    client.on('notification', (message) => this.events.emit(message.channel, message.payload ?? ''));
    try {
      await client.connect();
      for (const channel of this.channels) await client.query(`LISTEN ${channel}`);
    } catch (err) {
      reconnect(err as Error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.retryMs = FIRST_RETRY_MS;
    this.heartbeat = setInterval(() => {
      client.query('SELECT 1').catch((err: Error) => reconnect(err));
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    this.events.emit('listening');
  }
}
