-- wrk script for test i's pipelined run (bench/run.sh): each connection writes DEPTH
-- requests at once and writes the next batch when all of their answers are in.
--   wrk -s bench/wrk_pipeline.lua URL -- DEPTH     (16 when not given)
-- wrk counts every answer as a request; its latency is a whole batch's.
local batch

function init(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do r[i] = wrk.format() end
  batch = table.concat(r)
end

function request()
  return batch
end
