/**
 * The PostgreSQL circuit: the first connection error a query meets opens it; while open,
 * every query fails at once with 503 `backend_unavailable` without touching the pool (whose
 * queued queries would otherwise wait for reconnect back-offs of up to 20 s), and one probe
 * every `probeMs` checks whether the server is back; its first success closes the circuit.
 */
import { backendUnavailable } from "../outage";
import type { Logger } from "../logging";

/** postgres.js connection codes, socket errnos and the server's "going away / not yet up" SQLSTATEs. */
const CONNECTION_CODES: Record<string, string> = {
  CONNECT_TIMEOUT: "connect timeout",
  CONNECTION_CLOSED: "connection closed",
  CONNECTION_ENDED: "connection ended",
  CONNECTION_DESTROYED: "connection destroyed",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection broken",
  ETIMEDOUT: "connect timeout",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found",
  "57P01": "server shutting down",
  "57P02": "server crashed",
  "57P03": "server starting up",
  "08000": "connection error",
  "08001": "cannot connect",
  "08003": "connection lost",
  "08004": "connection rejected",
  "08006": "connection failure",
};

/** A short reason (no host, port or credentials) when `err` means the server is unreachable; else null. */
export function connectionFailure(err: unknown): string | null {
  for (let e = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code in CONNECTION_CODES) return CONNECTION_CODES[code];
  }
  return null;
}

export class DatabaseGate {
  private down: { since: number; reason: string } | null = null;
  private waiters: (() => void)[] = [];
  private probing = false;
  private closed = false;

  constructor(private probe: () => Promise<unknown>, private log: Logger, private probeMs = 500) {}

  /** Throws the 503 while the circuit is open. */
  check() {
    if (this.down) throw backendUnavailable("database", this.down.reason);
  }

  /** Passes the result through; a connection error opens the circuit and becomes the 503 (cause: the driver's error). */
  async observe<T>(work: PromiseLike<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      const reason = connectionFailure(err);
      if (!reason || this.closed) throw err;
      this.open(reason);
      throw Object.assign(backendUnavailable("database", reason), { cause: err });
    }
  }

  problem(): string | null {
    if (!this.down) return null;
    return `postgresql unavailable: ${this.down.reason} (for ${Math.round((Date.now() - this.down.since) / 1000)}s)`;
  }

  /** Resolves once the database answers (at once when it does). */
  whenAvailable(): Promise<void> {
    if (!this.down) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close() {
    this.closed = true;
    this.release();
  }

  private open(reason: string) {
    if (!this.down) {
      this.down = { since: Date.now(), reason };
      this.log.warn("database unavailable: requests answer 503 until it is back", { reason });
    }
    if (!this.probing) void this.probeUntilUp();
  }

  private async probeUntilUp() {
    this.probing = true;
    while (this.down && !this.closed) {
      await Bun.sleep(this.probeMs);
      try {
        await this.probe();
        if (this.down) this.log.info("database available again", { down_ms: Date.now() - this.down.since });
        this.release();
      } catch (err) {
        if (this.down) this.down.reason = connectionFailure(err) ?? this.down.reason;
      }
    }
    this.probing = false;
  }

  private release() {
    this.down = null;
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
