-- Replays pre-signed webhook bodies from BENCH_EVENTS (one "signature<TAB>body" per line).
-- Thread i of n sends lines i, i+n, i+2n, ... so that one user's steps stay on one thread, in order.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("BENCH_EVENTS")
  local total = tonumber(os.getenv("BENCH_THREADS"))
  requests_ = {}
  local n = 0
  for line in io.lines(path) do
    if n % total == index then
      local tab = string.find(line, "\t", 1, true)
      local signature = string.sub(line, 1, tab - 1)
      local body = string.sub(line, tab + 1)
      table.insert(requests_, wrk.format("POST", "/webhook", {
        ["Content-Type"] = "application/json",
        ["X-GoSendAPI-Signature"] = signature,
      }, body))
    end
    n = n + 1
  end
  position = 0
end

function request()
  position = position + 1
  if position > #requests_ then position = 1 end
  return requests_[position]
end

function done(summary, latency, requests)
  io.write(string.format(
    "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"errors_status\": %d, \"errors_connect\": %d, \"errors_read\": %d, \"errors_timeout\": %d, \"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d}\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
