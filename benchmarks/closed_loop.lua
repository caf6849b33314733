-- wrk script: replay one request (body from a file) on every connection, closed loop, and stop
-- after WRK_REQUESTS responses. wrk's main thread only wakes up at the end of -d, so when the
-- count is reached this script tells the Python driver on stderr, which sends wrk SIGINT; wrk
-- then reports the real elapsed time. Results go to stdout as one JSON line.
local limit = tonumber(os.getenv("WRK_REQUESTS") or "100")
local body_file = os.getenv("WRK_BODY_FILE") or ""
wrk.method = os.getenv("WRK_METHOD") or "GET"
if body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
end

local seen = 0

function response(status, headers, body)
  seen = seen + 1
  if seen == limit then
    io.stderr:write("WRK-LIMIT-REACHED\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
