-- wrk script: POST one ConferenceHeld per request, each with a fresh event_id, so every
-- request is a new event (a resend would only measure the duplicate path). LuaJIT's
-- math.random is not seeded, so ids are made unique by LEDGER_RUN (6 hex digits, new for
-- each wrk run) and the thread's number.
local token = os.getenv("LEDGER_TOKEN")
-- Legacy district 436 (Thành phố Hà Tĩnh), dated before the 2025 reorganization.
local unit = os.getenv("LEDGER_UNIT") or "436"
local run = os.getenv("LEDGER_RUN")
local counter = 0
local threads = 0
local prefix

function setup(thread)
  threads = threads + 1
  thread:set("thread_prefix", string.format("%s%02x", run, threads))
end

function init(args)
  prefix = thread_prefix
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  counter = counter + 1
  local id = string.format("%s-%04x-4%03x-8%03x-%012x", prefix, counter % 0x10000, counter % 0x1000, math.random(0, 0xfff), counter)
  local body = '{"event_id":"' .. id .. '","type":"ConferenceHeld","schema_version":2,"unit_code":"' .. unit ..
    '","occurred_at":"2024-09-15","payload":{"title":"Hội nghị sơ kết công tác phối hợp",' ..
    '"kind":"review","organizers":["Ban Dân vận Huyện ủy","Công an huyện"],"attendees":120,"online":false}}'
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 202 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
