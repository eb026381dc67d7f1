-- wrk script for bench/responder.sh: OCSP requests for distinct serials over keep-alive, GET or POST.
--   wrk ... -s bench/ocsp.lua URL -- MODE FILE [PREFIX]
-- MODE "get": FILE holds one percent-encoded base64 request per line, sent as GET PREFIX/<line>.
-- MODE "post": FILE holds one hex DER request per line, sent as POST PREFIX with application/ocsp-request.
-- Each thread walks the requests from its own offset, so every serial is asked in turn (no hot subset).
-- done() prints one machine-readable line: RESULT requests duration_us errors p50_us p99_us non2xx.
--
-- wrk's own wrk.resolve() tries each address with a connection it closes without sending anything. OpenSSL
-- 3.0's `openssl ocsp -port` responder never recovers from such a connection (it loops on read() = 0 and
-- answers nobody again), so this script resolves without the probe. The other servers do not notice.
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local requests = {}
local index = 1

local function unhex(line)
  return (line:gsub("..", function(pair) return string.char(tonumber(pair, 16)) end))
end

function init(args)
  local mode, file, prefix = args[1], args[2], args[3] or "/"
  if prefix:sub(-1) ~= "/" then prefix = prefix .. "/" end
  for line in io.lines(file) do
    if mode == "get" then
      requests[#requests + 1] = wrk.format("GET", prefix .. line)
    else
      requests[#requests + 1] = wrk.format("POST", prefix, {["Content-Type"] = "application/ocsp-request"},
                                           unhex(line))
    end
  end
  index = math.random(#requests)
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
                         e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99),
                         e.status))
end
