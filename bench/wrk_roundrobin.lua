-- wrk script shared by the bench/ scripts: each wrk thread round-robins over the
-- request paths in $BENCH_PATHS_FILE (one per line), starting at its own offset;
-- done() prints one WRKSTATS line with exact numbers (latencies in microseconds).
local paths_file = os.getenv("BENCH_PATHS_FILE")
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
local next_id = 0

function setup(thread)
    thread:set("tid", next_id)
    next_id = next_id + 1
end

local reqs = {}
local n = 0
local idx = 0

function init(args)
    for line in io.lines(paths_file) do
        if #line > 0 then
            n = n + 1
            reqs[n] = wrk.format("GET", line)
        end
    end
    assert(n > 0, "no paths in " .. paths_file)
    idx = math.floor((tid or 0) * n / nthreads) % n
end

function request()
    idx = idx % n + 1
    return reqs[idx]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "WRKSTATS requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d " ..
        "mean_us=%.1f max_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
        summary.requests, summary.duration, summary.bytes,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.mean, latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
