/**
 * WebSocket clients of the `ws` scenario, run as a separate process (several of them):
 *
 *   bun bench/lib/ws-clients.ts <ws-url> <count> [batch]
 *
 * Opens <count> sockets to <ws-url> (the token in its query), `batch` at a time, then prints
 * one JSON line {"ready":…}. Every `{"type":"event"}` frame received is timed against the
 * event's `created_at` (the commit of the change in PostgreSQL, same machine clock) into a
 * 1 ms histogram. A line "report" on stdin prints {"report":…} (counts, histogram and CPU
 * since the previous report); "exit" closes everything.
 */
export {}; // a module: top-level await
const [url, countArg, batchArg] = Bun.argv.slice(2);
const count = Number(countArg);
const batch = Number(batchArg ?? 250);

const sockets: WebSocket[] = [];
const hist = new Map<number, number>();
const byType: Record<string, number> = {};
let events = 0;
let opened = 0;
let failed = 0;
let closed = 0;
let otherFrames = 0;
const closeCodes: Record<string, number> = {};

function onMessage(ev: MessageEvent) {
  const now = Date.now();
  const text = typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data as ArrayBuffer);
  const frame = JSON.parse(text);
  if (frame.type !== "event") {
    otherFrames++;
    return;
  }
  events++;
  byType[frame.event.type] = (byType[frame.event.type] ?? 0) + 1;
  const ms = Math.max(0, now - Date.parse(frame.event.created_at));
  hist.set(ms, (hist.get(ms) ?? 0) + 1);
}

function open(): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    let settled = false;
    ws.onopen = () => {
      opened++;
      settled = true;
      resolve();
    };
    ws.onmessage = onMessage;
    ws.onerror = () => {
      if (!settled) {
        failed++;
        settled = true;
        resolve();
      }
    };
    ws.onclose = (e) => {
      closed++;
      closeCodes[e.code] = (closeCodes[e.code] ?? 0) + 1;
      if (!settled) {
        failed++;
        settled = true;
        resolve();
      }
    };
    sockets.push(ws);
  });
}

const t0 = performance.now();
for (let i = 0; i < count; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, count - i) }, open));
}
let cpu0 = process.cpuUsage();
console.log(JSON.stringify({ ready: { opened, failed, connect_ms: Math.round(performance.now() - t0) } }));

for await (const line of console) {
  const cmd = line.trim();
  if (cmd === "report") {
    const u = process.cpuUsage(cpu0);
    console.log(JSON.stringify({
      report: { opened, failed, closed, close_codes: closeCodes, events, by_type: byType, other_frames: otherFrames, hist: Object.fromEntries(hist), cpu_seconds: (u.user + u.system) / 1e6 },
    }));
    // Each report covers the frames since the previous one.
    hist.clear();
    events = 0;
    for (const k of Object.keys(byType)) delete byType[k];
    cpu0 = process.cpuUsage();
  } else if (cmd === "exit") {
    for (const ws of sockets) ws.close();
    process.exit(0);
  }
}
