-- wrk script for `make bench`: each request carries the next token of a file, cycling.
--
--   wrk -t1 -c32 -d5s -s bench/wrk/tokens.lua http://127.0.0.1:PORT/ -- TOKEN_FILE [THREADS]
--
-- TOKEN_FILE holds one token per line. Each thread loads it in `init` and pre-formats one
-- request per token, so the per-request cost in wrk is a table lookup, the same for every
-- configuration and workload. With THREADS (wrk's -t) given, thread k starts k/THREADS of the
-- way into the file, so threads do not send the same tokens at the same time.
-- `done` prints one line `BENCH_JSON {...}`: counts, errors (wrk counts a response with a
-- status >= 400 as a "status" error) and latency percentiles in µs. `wraps` is how many
-- times over its share of the file the busiest thread went (<= 1: no token was sent twice).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- Globals, so that `done` can read them from each thread with thread:get.
requests, n, i, sent, share = nil, 0, 0, 0, 1

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2] or "1")
  if not file then error("tokens.lua: give a token file after --") end
  requests = {}
  for line in io.lines(file) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. line })
    end
  end
  n = #requests
  if n == 0 then error("tokens.lua: no tokens in " .. file) end
  share = math.max(1, math.floor(n / nthreads))
  i = (id * share) % n
  sent = 0
end

function request()
  i = i + 1
  if i > n then i = 1 end
  sent = sent + 1
  return requests[i]
end

function done(summary, latency, _)
  local tokens, max_sent, min_share = 0, 0, nil
  for _, t in ipairs(threads) do
    tokens = t:get("n") or tokens
    local s = t:get("sent") or 0
    if s > max_sent then max_sent = s end
    min_share = t:get("share") or min_share
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d},' ..
    '"tokens":%d,"max_sent_per_thread":%d,"wraps":%.3f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    tokens, max_sent, max_sent / (min_share or 1)))
end
