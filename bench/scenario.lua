-- wrk script for every benchmark scenario; SCENARIO picks one, BENCH_DATA names the
-- Lua file (written by run.py) with the users, their tokens and one task id each.
local scenario = os.getenv("SCENARIO") or "rest_list"
local data = dofile(os.getenv("BENCH_DATA"))
local think_ms = tonumber(os.getenv("THINK_MS") or "0")
-- "lockstep": every connection waits exactly THINK_MS, so the 1,000 connections wrk opens
-- together stay in step and arrive as one burst per period; "jitter": each wait is uniform
-- in [0.5, 1.5] x THINK_MS (the same mean), the way independent users arrive.
local think = os.getenv("THINK") or "jitter"

local readers, writers = data.readers, data.writers
local list_query = '{"query":"{ tasks(first: 20) { nodes { id title description completed dueDate createdAt } } }"}'
local create_mutation = '{"query":"mutation { createTask(input: {title: \\"bench task\\", description: \\"made by wrk\\"}) { task { id title completed createdAt } userErrors { code } } }"}'
local create_body = '{"title":"bench task","description":"made by wrk"}'
local update_body = '{"title":"renamed by wrk"}'

-- The list query by its SHA-256 alone (automatic persisted queries; run.py registers the
-- document before the runs): as a POST body, and as GET's query string.
local persisted_body = '{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"' ..
  (os.getenv("PERSISTED_HASH") or "") .. '"}}}'
local persisted_path = "/graphql?" .. (os.getenv("PERSISTED_QUERY_STRING") or "")

local counter = 0
local created = {}   -- ids created by this thread's writer, for the mix's deletes
local thread_id = 0
-- In the mix each thread writes as one user of its own, so every 201 it sees is that
-- user's task (responses of a thread's many connections arrive in any order).
local thread_writer = nil

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  counter = thread_id * 7919
  math.randomseed(thread_id * 104729 + os.time())
  thread_writer = writers[(thread_id % #writers) + 1]
end

local function headers(user)
  return { ["Authorization"] = "Bearer " .. user.token, ["Content-Type"] = "application/json" }
end

local function pick(users)
  counter = counter + 1
  return users[(counter % #users) + 1]
end

local function rest_list()
  local u = pick(readers)
  return wrk.format("GET", "/api/" .. u.id .. "/tasks", headers(u))
end

local function graphql_list()
  return wrk.format("POST", "/graphql", headers(pick(readers)), list_query)
end

local function graphql_list_persisted()
  return wrk.format("POST", "/graphql", headers(pick(readers)), persisted_body)
end

local function graphql_list_persisted_get()
  return wrk.format("GET", persisted_path, headers(pick(readers)))
end

local function rest_create()
  local u = pick(writers)
  return wrk.format("POST", "/api/" .. u.id .. "/tasks", headers(u), create_body)
end

-- Every request a key of its own, as a client sends each new write: unique across threads
-- (thread_id), requests (counter) and runs (the start time), so none is ever a replay.
local run_started = os.time()
local function rest_create_key()
  local u = pick(writers)
  local h = headers(u)
  h["Idempotency-Key"] = string.format('"bench-%d-%d-%d"', run_started, thread_id, counter)
  return wrk.format("POST", "/api/" .. u.id .. "/tasks", h, create_body)
end

local function graphql_create()
  return wrk.format("POST", "/graphql", headers(pick(writers)), create_mutation)
end

local function rest_toggle()
  local u = pick(readers)
  return wrk.format("PATCH", "/api/" .. u.id .. "/tasks/" .. u.task .. "/complete", headers(u))
end

local function rest_update()
  local u = pick(readers)
  return wrk.format("PUT", "/api/" .. u.id .. "/tasks/" .. u.task, headers(u), update_body)
end

local function rest_delete()
  local entry = table.remove(created)
  if entry == nil then
    return rest_list()
  end
  return wrk.format("DELETE", "/api/" .. thread_writer.id .. "/tasks/" .. entry, headers(thread_writer))
end

local function mix()
  counter = counter + 1
  local roll = (counter * 37) % 100
  if roll < 35 then return rest_list() end
  if roll < 70 then return graphql_list() end
  if roll < 80 then
    return wrk.format("POST", "/api/" .. thread_writer.id .. "/tasks", headers(thread_writer), create_body)
  end
  if roll < 90 then return rest_toggle() end
  if roll < 95 then return rest_update() end
  return rest_delete()
end

local builders = {
  rest_list = rest_list, graphql_list = graphql_list, rest_create = rest_create,
  rest_create_key = rest_create_key,
  graphql_create = graphql_create, rest_toggle = rest_toggle, mix = mix,
  graphql_list_persisted = graphql_list_persisted,
  graphql_list_persisted_get = graphql_list_persisted_get,
}
request = builders[scenario]

if think_ms > 0 then
  if think == "lockstep" then
    function delay() return think_ms end
  else
    function delay() return math.floor(think_ms * (0.5 + math.random())) end
  end
end

if scenario == "mix" then
  function response(status, hdrs, body)
    if status == 201 then
      local id = string.match(body, '"id":(%d+)')
      if id then table.insert(created, id) end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"non2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout))
end
