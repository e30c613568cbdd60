/**
 * Following a run from the gateway: Server-Sent Events and long-poll wait. Both read the
 * run's events through `p.clients.agents` (the database is the source of truth) and use the
 * bus subject `live.runs.<id>` only as a doorbell to re-read at once; a slow poll covers lost
 * doorbells. SSE: `id:` = seq, `event:` = type, `data:` = JSON; replay after `after` /
 * Last-Event-ID, then live, keep-alive comments every 15 s, end after the terminal event.
 */
import type { AppPlatform } from "../clients";
import { isTerminal, runLiveSubject, TERMINAL_EVENTS, type RunEventOut, type RunOut } from "../../runs";

export const KEEPALIVE_MS = 15_000;
const POLL_MS = 2_000;
const PAGE = 500;

/** Resolves on the next doorbell of the run or after `ms`, whichever first. */
function doorbell(p: AppPlatform, runId: string) {
  let wake: (() => void) | null = null;
  let rang = false;
  const unsubscribe = p.bus.subscribe(runLiveSubject(p.bus, runId), () => {
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

/** Opens the SSE response; throws (404…) before any byte is sent when the run is not the caller's. */
export async function runEventStream(p: AppPlatform, orgId: string, runId: string, after: number): Promise<Response> {
  const first = await p.clients.agents.runEvents(orgId, runId, after, PAGE);
  const encoder = new TextEncoder();
  const bell = doorbell(p, runId);
  let closed = false;
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      let last = after;
      let lastWrite = Date.now();
      const send = (text: string) => {
        controller.enqueue(encoder.encode(text));
        lastWrite = Date.now();
      };
      try {
        let batch = first;
        for (;;) {
          let ended = false;
          for (const e of batch.events) {
            send(formatSse(e));
            last = e.seq;
            if (TERMINAL_EVENTS.includes(e.type)) ended = true;
          }
          if (ended || closed) break;
          // Terminal and nothing newer than the cursor: the client already saw the end.
          if (isTerminal(batch.status) && batch.events.length === 0) break;
          if (batch.events.length < PAGE) {
            await bell.wait(Math.min(POLL_MS, Math.max(0, KEEPALIVE_MS - (Date.now() - lastWrite))));
            if (closed) break;
            if (Date.now() - lastWrite >= KEEPALIVE_MS) send(": keep-alive\n\n");
          }
          batch = await p.clients.agents.runEvents(orgId, runId, last, PAGE);
        }
      } catch (err) {
        if (!closed) {
          p.log.warn("run event stream failed", { run_id: runId, error: err });
          send(`event: error\ndata: ${JSON.stringify({ code: "stream_failed", message: "The event stream broke; reconnect with Last-Event-ID to resume." })}\n\n`);
        }
      } finally {
        bell.close();
        if (!closed) controller.close();
      }
    },
    cancel() {
      closed = true;
      bell.interrupt();
      bell.close();
    },
  });
  return new Response(stream, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" },
  });
}

/** Returns the run once it is terminal or requires_action, or as it is when `timeoutS` runs out. */
export async function waitForRun(p: AppPlatform, orgId: string, runId: string, timeoutS: number): Promise<RunOut> {
  const deadline = Date.now() + timeoutS * 1000;
  const bell = doorbell(p, runId);
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
