-- wrk script for `make soak`: cycles through a token file (or sends no token) and checks every
-- response's status against the one expected.
--
--   wrk -t1 -c8 -d180s -s bench/wrk/expect.lua http://127.0.0.1:PORT/ -- EXPECTED [TOKEN_FILE]
--
-- `done` prints `SOAK_JSON {...}`: requests, how many had another status, the first such
-- status, how many were 5xx, and socket errors.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

requests_list, n, i, expected, wrong, first_wrong, server_errors, seen = nil, 0, 0, 0, 0, 0, 0, 0

function init(args)
  expected = tonumber(args[1])
  local file = args[2]
  requests_list = {}
  if file then
    for line in io.lines(file) do
      if #line > 0 then
        requests_list[#requests_list + 1] = wrk.format("GET", "/soak", { ["Authorization"] = "Bearer " .. line })
      end
    end
  else
    requests_list[1] = wrk.format("GET", "/soak")
  end
  n = #requests_list
end

function request()
  i = i % n + 1
  return requests_list[i]
end

function response(status, _headers, _body)
  seen = seen + 1
  if status ~= expected then
    wrong = wrong + 1
    if first_wrong == 0 then first_wrong = status end
  end
  if status >= 500 then server_errors = server_errors + 1 end
end

function done(summary, latency, _)
  local total_wrong, total_5xx, total_seen, first = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    total_wrong = total_wrong + (t:get("wrong") or 0)
    total_5xx = total_5xx + (t:get("server_errors") or 0)
    total_seen = total_seen + (t:get("seen") or 0)
    if first == 0 then first = t:get("first_wrong") or 0 end
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK_JSON {"requests":%d,"checked":%d,"wrong":%d,"first_wrong_status":%d,"server_errors":%d,' ..
    '"socket_errors":%d,"p99_us":%d}\n',
    summary.requests, total_seen, total_wrong, first, total_5xx,
    e.connect + e.read + e.write + e.timeout, latency:percentile(99)))
end
