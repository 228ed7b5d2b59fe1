-- wrk script for the gateway benchmarks: POST one fixed JSON body on every request.
--
--   WRK_BODY_FILE       path of the request body (read once per wrk thread)
--   WRK_AUTHORIZATION   optional value of the Authorization header
--
-- At the end it prints a single line "WRK_JSON {...}" with the request count, the error
-- counters and latency percentiles (microseconds), which tests/benchmarks/run.py parses.

local path = os.getenv("WRK_BODY_FILE")
assert(path and path ~= "", "WRK_BODY_FILE is not set")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local authorization = os.getenv("WRK_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
