-- wrk script of the devconsole benchmarks: counts the requests each thread
-- sends and the responses it receives, so a benchmark can compare the exact
-- number sent with the console's own total.
--
-- Arguments (after `--`): LIMIT SECONDS. Each thread stops after LIMIT
-- responses (0: no limit) or SECONDS of load (0: none), whichever comes
-- first. A stopped thread leaves its sockets open until wrk exits, so the
-- requests it already sent are still answered and counted by the server: run
-- wrk with a -d longer than SECONDS (or interrupt it once the server is idle)
-- and the counts match exactly.

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } devconsole_timespec;
  int clock_gettime(int clk_id, devconsole_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("devconsole_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

function init(args)
  -- wrk calls request() once more on its first thread, right after init, to
  -- check the request (script_verify_request); nothing is sent then.
  sent = (index == 1) and -1 or 0
  received = 0
  first = 0
  last = 0
  limit = tonumber(args[1]) or 0
  seconds = tonumber(args[2]) or 0
  started = now()
end

function request()
  sent = sent + 1
  return wrk.request()
end

function response(status, headers, body)
  received = received + 1
  local t = now()
  if first == 0 then first = t end
  last = t
  if (limit > 0 and received >= limit) or (seconds > 0 and t - started >= seconds) then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local s, r = 0, 0
  local t0, t1 = math.huge, 0
  for _, thread in ipairs(threads) do
    s = s + thread:get("sent")
    r = r + thread:get("received")
    local a, b = thread:get("first"), thread:get("last")
    if a > 0 and a < t0 then t0 = a end
    if b > t1 then t1 = b end
  end
  if t1 < t0 then t0, t1 = 0, 0 end
  io.write(string.format("devconsole-bench sent=%d received=%d active=%.6f\n", s, r, t1 - t0))
end
