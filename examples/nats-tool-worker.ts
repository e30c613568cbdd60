/**
 * A minimal AgentOS tool worker on NATS: answers the `get_weather` tool on the subject
 * `tools.weather`. Any process in any language that can talk to NATS can be a worker.
 *
 *   NATS_URL=nats://127.0.0.1:4222 bun examples/nats-tool-worker.ts
 *   NATS_URL=nats://tool-worker:PASSWORD@127.0.0.1:4222 bun examples/nats-tool-worker.ts   # deploy/nats/agentos.conf
 *
 * Register the tool once (AgentOS must run with the same NATS_URL: the embedded in-process
 * bus cannot reach external workers):
 *
 *   curl -X POST $AGENTOS/v1/tools -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{
 *     "name": "get_weather", "description": "Current weather of a city", "kind": "nats",
 *     "config": {"subject": "tools.weather"}, "timeout_ms": 10000,
 *     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}'
 *
 * Message contract (core NATS request/reply, UTF-8 JSON bodies):
 *   - Subject: the tool's `config.subject`, used exactly as registered (NOT prefixed with the
 *     AgentOS namespace). It must lie under the tools prefix (`tools.` unless the deployment
 *     sets AGENTOS_TOOLS_SUBJECT_PREFIX); any other subject is refused at registration.
 *     Wildcards are not allowed in the registered subject. With deploy/nats/agentos.conf the
 *     worker connects as the `tool-worker` user, which may subscribe only to `tools.>` and
 *     publish only replies: it never sees AgentOS's own traffic.
 *   - Request:  {"tool": "<tool name>", "arguments": {…}, "run_id": "run_…" | null,
 *                "tool_call_id": "<the model's call id>" | "manual_<uuid>"}
 *     `arguments` were already validated by AgentOS against the tool's JSON Schema.
 *     `run_id` is null when a person invokes the tool by hand (POST /v1/tools/:id/invoke).
 *   - Reply (to the request's reply subject, exactly once):
 *       success: {"output": <any JSON>}               → the model sees `output`
 *       failure: {"error": {"code": "snake_case", "message": "…"}} → the model sees an error result
 *     Anything else (not JSON, neither key) becomes the error `invalid_tool_reply`.
 *   - Timeout: no reply within the tool's `timeout_ms` → error `tool_timeout`; no subscriber
 *     at all → error `tool_unavailable`. The run continues either way; the model sees the error.
 *   - Scaling: subscribe with a queue group (here "tool-workers") so several replicas share
 *     the calls and each call is answered once.
 *   - Idempotency: a run resumed after a crash may repeat a call that never got its result
 *     recorded; use `tool_call_id` to deduplicate side effects.
 *
 * The same worker in Python (nats-py; `pip install nats-py`):
 *
 *   import asyncio, json, nats
 *   async def main():
 *       nc = await nats.connect("nats://127.0.0.1:4222")
 *       async def handle(msg):
 *           req = json.loads(msg.data)
 *           city = req["arguments"]["city"]
 *           if city.lower() == "atlantis":
 *               reply = {"error": {"code": "unknown_city", "message": f"No weather for {city}"}}
 *           else:
 *               reply = {"output": {"city": city, "temperature_c": 21, "conditions": "sunny"}}
 *           await msg.respond(json.dumps(reply).encode())
 *       await nc.subscribe("tools.weather", queue="tool-workers", cb=handle)
 *       await asyncio.Event().wait()
 *   asyncio.run(main())
 */
import { connect } from "@nats-io/transport-node";

interface ToolRequest {
  tool: string;
  arguments: { city: string };
  run_id: string | null;
  tool_call_id: string;
}

type ToolReply = { output: unknown } | { error: { code: string; message: string } };

const SUBJECT = process.env.TOOL_SUBJECT ?? "tools.weather";

/** The tool itself: replace with real work. */
async function getWeather(city: string): Promise<ToolReply> {
  if (city.toLowerCase() === "atlantis") return { error: { code: "unknown_city", message: `No weather for ${city}` } };
  return { output: { city, temperature_c: 21, conditions: "sunny" } };
}

/** Every request gets exactly one reply: a thrown error becomes {error}. */
async function answer(parse: () => ToolRequest): Promise<ToolReply> {
  try {
    return await getWeather(parse().arguments.city);
  } catch (e) {
    return { error: { code: "worker_failed", message: (e as Error).message } };
  }
}

// The NATS client ignores credentials in a URL: pass them as options.
const url = new URL(process.env.NATS_URL ?? "nats://127.0.0.1:4222");
const auth = url.password ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : url.username ? { token: decodeURIComponent(url.username) } : {};
const nc = await connect({ servers: `${url.protocol}//${url.host}`, ...auth, name: "weather-tool-worker" });
nc.subscribe(SUBJECT, {
  queue: "tool-workers",
  callback: (err, msg) => {
    if (err) return void console.error(err);
    void answer(() => msg.json<ToolRequest>()).then((reply) => msg.respond(JSON.stringify(reply)));
  },
});
await nc.flush(); // the server has the subscription: calls reach us from now on
console.log(`answering ${SUBJECT} on ${nc.getServer()}`);

// Drain on Ctrl-C / SIGTERM: finish the calls in flight, then exit.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void nc.drain().then(() => process.exit(0)));
await nc.closed();
