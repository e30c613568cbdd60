-- wrk script shared by every scenario. Configured through the environment so that one
-- file serves reads, writes and the trivial /healthz baseline:
--   BENCH_TOKEN    bearer token sent as Authorization (absent: no header)
--   BENCH_METHOD   GET (default) or POST ...
--   BENCH_BODY     request body (JSON); sets Content-Type: application/json
--   BENCH_HOLD_MS  connections open at once but send their first request only after this
--                  many ms (+ a random 0..PACE or 0..100 ms stagger): the connections are
--                  all up before anything is measured (wrk's histogram holds only requests).
--   BENCH_PACE_MS  when > 0, each connection then sends one request every PACE ms (after the
--                  previous answer): a constant offered rate of connections*1000/PACE rps as
--                  long as latency << PACE. wrk has no open-loop mode; at 10,000 connections
--                  and PACE 5000 ms this is one in flight per connection at most, so an answer
--                  slower than PACE is the only way to lose offered load.
--   BENCH_CONNS_PER_THREAD  connections per wrk thread (the first that many delay() calls
--                  of a thread are the first requests of its connections).
-- done() prints one line "WRK_JSON {...}" with the figures wrk's own --latency lacks (p95).
local token = os.getenv("BENCH_TOKEN")
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local pace = tonumber(os.getenv("BENCH_PACE_MS") or "0") or 0
local hold = tonumber(os.getenv("BENCH_HOLD_MS") or "0") or 0
local perThread = tonumber(os.getenv("BENCH_CONNS_PER_THREAD") or "0") or 0

wrk.method = method
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

if pace > 0 or hold > 0 then
  -- each thread has its own Lua state: seed from a per-state address so threads differ
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
  local calls = 0
  local stagger = pace > 0 and pace or 100
  function delay()
    calls = calls + 1
    if calls <= perThread then return hold + math.random(0, stagger) end
    return pace
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency:percentile(99.9)))
end
