-- Replays a file of pre-built requests, one per line, cycling; counts non-2xx answers.
--
--   wrk -t2 -c32 -d10s --latency -s bench/lua/replay.lua http://127.0.0.1:8000 -- requests.tsv 2
--
-- The last argument repeats wrk's -t (thread count), which wrk does not expose to scripts.
--
-- Each line: METHOD <TAB> PATH <TAB> HEADERS <TAB> BODY, headers as "Name: value"
-- joined by "|" (empty for none). Python (bench/payloads.py) writes these files, so
-- tokens, ids and signed webhook bodies rotate without any work in Lua at run time.
-- Thread k starts at line k * lines / threads, so two threads do not send the same
-- body until a thread has gone once round the file; `wrapped` counts such rounds
-- (for webhooks a wrap means duplicate deliveries, not distinct payments).
-- At the end one line `BENCH_JSON {...}` reports what wrk measured and what we counted.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function split(text, separator)
  local parts, start = {}, 1
  while true do
    local i = string.find(text, separator, start, true)
    if not i then
      table.insert(parts, string.sub(text, start))
      return parts
    end
    table.insert(parts, string.sub(text, start, i - 1))
    start = i + #separator
  end
end

local function build(line)
  local fields = split(line, "\t")
  local headers = {}
  if fields[3] and fields[3] ~= "" then
    for _, pair in ipairs(split(fields[3], "|")) do
      local colon = string.find(pair, ":", 1, true)
      headers[string.sub(pair, 1, colon - 1)] = string.gsub(string.sub(pair, colon + 1), "^%s+", "")
    end
  end
  local body = fields[4]
  if body == "" then body = nil end
  return wrk.format(fields[1], fields[2], headers, body)
end

function init(args)
  requests = {}
  for line in io.lines(args[1]) do
    if line ~= "" then table.insert(requests, build(line)) end
  end
  total = #requests
  -- args[2] is wrk's thread count (-t), which wrk does not expose to scripts.
  position = math.floor(index * total / tonumber(args[2] or 1)) % total
  started_at = position
  wrapped = 0
  non2xx = 0
  statuses = {}
  sample = ""
end

function request()
  local current = requests[position + 1]
  position = (position + 1) % total
  if position == started_at then wrapped = wrapped + 1 end
  return current
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
    if sample == "" and body then sample = string.sub(body, 1, 300) end
  end
end

local function quote(text)
  local escaped = string.gsub(string.gsub(text, "[%c]", " "), '[\\"]', "\\%0")
  return '"' .. escaped .. '"'
end

function done(summary, latency, requests_)
  local non2xx_total, wraps, lines, sample_text = 0, 0, 0, ""
  local by_status = {}
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    wraps = wraps + thread:get("wrapped")
    lines = thread:get("total")
    for status, count in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + count
    end
    if sample_text == "" then sample_text = thread:get("sample") end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    table.insert(parts, string.format('"%s":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"non2xx":%d,"statuses":{%s},"wrapped":%d,"lines":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"sample":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout,
    non2xx_total, table.concat(parts, ","), wraps, lines,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, quote(sample_text)))
end
