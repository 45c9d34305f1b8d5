-- wrk script: POST to PATH_PREFIX .. item .. PATH_SUFFIX with BODY, each item of the file
-- LIST once across all threads (thread t takes items OFFSET + t, OFFSET + t + threads, ...); `{i}` in BODY
-- becomes a number unique to the request. Items and body come from the environment.
local threads = {}
local counter = 1
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  items = {}
  local list = os.getenv("LIST")
  if list and list ~= "" then
    for line in io.lines(list) do items[#items + 1] = line end
  end
  prefix = os.getenv("PATH_PREFIX")
  suffix = os.getenv("PATH_SUFFIX") or ""
  body = os.getenv("BODY") or ""
  step = tonumber(os.getenv("THREADS"))
  offset = tonumber(os.getenv("OFFSET") or "0")
  next_item = offset + id
  n = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("ALLOT_API_KEY")
end

function request()
  n = n + 1
  local path = prefix
  if #items > 0 then
    path = prefix .. items[next_item] .. suffix
    next_item = next_item + step
    if next_item > #items then next_item = id end -- run out: answers turn to refusals
  end
  return wrk.format(nil, path, nil, (body:gsub("{i}", id .. "-" .. n)))
end
