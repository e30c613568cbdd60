/**
 * Following a run from the gateway: Server-Sent Events and long-poll wait. Both read the
 * run's events through `p.clients.agents` (the database is the source of truth) and use the
 * bus subject `live.runs.<id>` only as a doorbell to re-read at once; a slow poll covers lost
 * doorbells. All the SSE streams of one run share one reader (RunFeed). SSE: `id:` = seq,
 * `event:` = type, `data:` = JSON; replay after `after` / Last-Event-ID, then live, keep-alive
 * comments every 15 s, end after the terminal event; a reader that falls more than
 * MAX_SSE_BUFFERED_BYTES behind is cut off (it resumes with Last-Event-ID).
 */
import type { AppPlatform } from "../clients";
import { isTerminal, runLiveSubject, TERMINAL_EVENTS, type RunDoorbellMessage, type RunEventOut, type RunOut } from "../../runs";

export const KEEPALIVE_MS = 15_000;
const POLL_MS = 2_000;
const PAGE = 500;

/** Resolves on the next doorbell of the run or after `ms`, whichever first. */
/** Rings at each committed write of the run, or only at those `wakesOn` accepts. */
function doorbell(p: AppPlatform, runId: string, wakesOn: (msg: RunDoorbellMessage | undefined) => boolean = () => true) {
  let wake: (() => void) | null = null;
  let rang = false;
  const unsubscribe = p.bus.subscribe<RunDoorbellMessage>(runLiveSubject(p.bus, runId), (msg) => {
    if (!wakesOn(msg.data)) return;
    rang = true;
    wake?.();
  });
  return {
    wait(ms: number) {
      if (rang) {
        rang = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wake = null;
          rang = false;
          resolve();
        }
        wake = done;
      });
    },
    interrupt: () => wake?.(),
    close: unsubscribe,
  };
}

export function formatSse(e: RunEventOut): string {
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

/** Bytes an SSE stream may hold unread (a reader slower than its run); past it the stream is cut, like a WebSocket past its backpressure limit. */
export const MAX_SSE_BUFFERED_BYTES = 1024 * 1024;

type Batch = { status: string; events: RunEventOut[] };
type FeedListener = (batch: Batch) => void;

/**
 * The live side of one run, shared by all the SSE streams that follow it in this process: one
 * doorbell subscription and one database read per doorbell (or per POLL_MS), whose new events
 * go to every stream. Started by the first stream, ended with the last.
 */
class RunFeed {
  private listeners = new Set<FeedListener>();
  private bell;
  private stopped = false;

  constructor(
    private p: AppPlatform,
    private orgId: string,
    private runId: string,
    private cursor: number,
    private onEnd: () => void,
  ) {
    this.bell = doorbell(p, runId);
    void this.loop();
  }

  /** Adds a listener; returns its removal. */
  listen(fn: FeedListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.stop();
    };
  }

  private stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.bell.interrupt();
    this.bell.close();
    this.onEnd();
  }

  private async loop() {
    try {
      // The first read at once: events may have landed between the opening stream's read and the doorbell subscription.
      for (let first = true; !this.stopped; first = false) {
        if (!first) await this.bell.wait(POLL_MS);
        if (this.stopped) break;
        let batch: Batch;
        do {
          batch = await this.p.clients.agents.runEvents(this.orgId, this.runId, this.cursor, PAGE);
          if (batch.events.length) this.cursor = batch.events.at(-1)!.seq;
          for (const fn of [...this.listeners]) fn(batch);
        } while (batch.events.length === PAGE && !this.stopped);
        if (isTerminal(batch.status) && batch.events.length === 0) break;
      }
    } catch (err) {
      for (const fn of [...this.listeners]) fn({ status: "error", events: [] });
      this.p.log.warn("run event feed failed", { run_id: this.runId, error: err });
    } finally {
      this.stop();
    }
  }
}

const feeds = new Map<string, RunFeed>();

function feedOf(p: AppPlatform, orgId: string, runId: string, cursor: number): RunFeed {
  const key = `${orgId}:${runId}`;
  let feed = feeds.get(key);
  if (!feed) {
    feed = new RunFeed(p, orgId, runId, cursor, () => {
      if (feeds.get(key) === feed) feeds.delete(key);
    });
    feeds.set(key, feed);
  }
  return feed;
}

/** Runs followed live in this process (one database reader each). */
export const liveRunFeeds = () => feeds.size;

const STREAM_FAILED = `event: error\ndata: ${JSON.stringify({ code: "stream_failed", message: "The event stream broke; reconnect with Last-Event-ID to resume." })}\n\n`;

/**
 * Opens the SSE response; throws (404…) before any byte is sent when the run is not the caller's.
 * Replay: this stream reads the events after `after` itself; live: it listens to the run's shared
 * feed, subscribed before the replay so nothing falls between the two (duplicates are skipped by seq).
 */
export async function runEventStream(p: AppPlatform, orgId: string, runId: string, after: number): Promise<Response> {
  const first = await p.clients.agents.runEvents(orgId, runId, after, PAGE);
  // A reconnect after the terminal event: nothing will ever follow. 204 tells an EventSource to
  // stop reconnecting (a 200 with an empty body makes it retry every few seconds forever).
  if (isTerminal(first.status) && first.events.length === 0) return new Response(null, { status: 204, headers: { "cache-control": "no-cache" } });
  const encoder = new TextEncoder();
  let finish: () => void = () => {};
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let last = after;
        let done = false;
        let replaying = true;
        const held: Batch[] = [];
        let keepAlive: ReturnType<typeof setInterval> | undefined;
        let unlisten = () => {};
        finish = () => {
          if (done) return;
          done = true;
          clearInterval(keepAlive);
          unlisten();
        };
        const end = () => {
          if (done) return;
          finish();
          controller.close();
        };
        const send = (text: string) => {
          if (done) return;
          controller.enqueue(encoder.encode(text));
          // The reader is not keeping up: drop what it has not read (it resumes with Last-Event-ID).
          if ((controller.desiredSize ?? 0) < -MAX_SSE_BUFFERED_BYTES) {
            finish();
            controller.error(new Error("slow SSE reader"));
          }
        };
        /** Writes the events newer than the cursor; ends after a terminal one, or when the run is over and nothing is newer. */
        const deliver = (batch: Batch) => {
          if (batch.status === "error") {
            send(STREAM_FAILED);
            return end();
          }
          for (const e of batch.events) {
            if (e.seq <= last) continue;
            send(formatSse(e));
            last = e.seq;
            if (TERMINAL_EVENTS.includes(e.type)) return end();
          }
          if (isTerminal(batch.status) && !batch.events.some((e) => e.seq > last)) end();
        };
        const onLive = (batch: Batch) => (replaying ? held.push(batch) : deliver(batch));
        const cursorAtStart = first.events.at(-1)?.seq ?? after;
        if (!(isTerminal(first.status) && first.events.length < PAGE)) unlisten = feedOf(p, orgId, runId, cursorAtStart).listen(onLive);
        keepAlive = setInterval(() => send(": keep-alive\n\n"), KEEPALIVE_MS);
        // Written at once so the response headers leave now (`open` fires), not at the first event.
        send(": stream opened\n\n");
        void (async () => {
          try {
            let batch = first;
            deliver(batch);
            while (!done && batch.events.length === PAGE) {
              batch = await p.clients.agents.runEvents(orgId, runId, last, PAGE);
              deliver(batch);
            }
            if (done) return;
            replaying = false;
            for (const b of held.splice(0)) deliver(b);
          } catch (err) {
            p.log.warn("run event stream failed", { run_id: runId, error: err });
            send(STREAM_FAILED);
            end();
          }
        })();
      },
      cancel() {
        finish();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }),
  );
  return new Response(stream, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" },
  });
}

/** Returns the run once it is terminal or requires_action, or as it is when `timeoutS` runs out. */
export async function waitForRun(p: AppPlatform, orgId: string, runId: string, timeoutS: number): Promise<RunOut> {
  const deadline = Date.now() + timeoutS * 1000;
  // Woken by the write that ends (or pauses) the run, not by each step's: one read instead of one per step.
  const bell = doorbell(p, runId, (msg) => typeof msg?.status !== "string" || isTerminal(msg.status) || msg.status === "requires_action");
  try {
    for (;;) {
      const run = await p.clients.agents.getRun(orgId, runId);
      const left = deadline - Date.now();
      if (isTerminal(run.status) || run.status === "requires_action" || left <= 0) return run;
      await bell.wait(Math.min(left, POLL_MS));
    }
  } finally {
    bell.close();
  }
}

export function lastEventId(header: string | null): number | undefined {
  if (!header || !/^\d{1,10}$/.test(header.trim())) return undefined;
  return Number(header.trim());
}

/**
 * Follows a run until it is terminal or requires_action (or `timeoutS` passes, or `signal`
 * aborts): `onEvent` sees each of its events in order, from the first. Returns the run.
 */
export async function followRun(p: AppPlatform, orgId: string, runId: string, onEvent: (e: RunEventOut) => void | Promise<void>, timeoutS: number, signal?: AbortSignal): Promise<RunOut> {
  const deadline = Date.now() + timeoutS * 1000;
  const bell = doorbell(p, runId);
  const stop = () => bell.interrupt();
  signal?.addEventListener("abort", stop);
  let cursor = 0;
  try {
    for (;;) {
      const batch = await p.clients.agents.runEvents(orgId, runId, cursor, PAGE);
      for (const e of batch.events) {
        cursor = e.seq;
        await onEvent(e);
      }
      if (batch.events.length === PAGE) continue;
      const left = deadline - Date.now();
      if (isTerminal(batch.status) || batch.status === "requires_action" || left <= 0 || signal?.aborted) return p.clients.agents.getRun(orgId, runId);
      await bell.wait(Math.min(left, POLL_MS));
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    bell.close();
  }
}
