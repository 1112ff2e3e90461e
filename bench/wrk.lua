-- wrk script for the benchmarks (bench/run.py's wrk_load): checks every answer and reports JSON.
--
--   wrk ... -s bench/wrk.lua URL -- EXPECTED_STATUS MARKER [usage RUN_TAG]
--
-- EXPECTED_STATUS: the only status that counts as a success (200, 201). MARKER: text every good
-- answer contains ("-": none), so a login redirect or an error page is never counted as a page.
-- "usage RUN_TAG": POST a usage body (1 AI image) with an idempotency key of its own per request,
-- RUN_TAG-<thread>-<n>, so every request really debits. The last line printed is
-- "WRK_JSON {...}": requests, seconds, latency percentiles (ms) and the answers that were not good.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[1]) or 200
  marker = args[2] or "-"
  usage = args[3] == "usage"
  tag = args[4] or "run"
  bad = 0
  first_bad = ""
  if usage then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if not usage then
    return wrk.format()
  end
  counter = counter + 1
  local body = string.format(
    '{"output_type": "ai_image", "quantity": 1, "event_id": "bench", "idempotency_key": "%s-%d-%d"}',
    tag, id, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= expected or (marker ~= "-" and not string.find(body, marker, 1, true)) then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 160)
    end
  end
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    if first == "" then first = thread:get("first_bad") end
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "mean_ms": %.3f, "bad": %d, "first_bad": %s, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, latency.mean / 1e3, bad_total, json_string(first),
    errors.connect + errors.read + errors.write + errors.timeout))
end
