-- caresignal risk state: the one Redis function that applies a subject's events
-- (DESIGN §6-§7). The C side prepends "#!lua name=..." and a table R of the rules
-- (thresholds, half-life, windows, names) and registers the function as FN_NAME.
--
-- FCALL <fn> <2+m> <state> <events> <seen month 1> .. <seen month m>
--       <subject kind index> <n> then n events of 10 arguments each:
--       event_key signal severity area occurred_at weight immediate assurance partition
--       offset, plus one more: the index (3..) of the event's seen key in KEYS.
--
-- Alerts a call produces are kept in the state's pending_alerts until the scorer has
-- delivered them and calls ACK_NAME; a redelivered event re-emits the pending alert it
-- triggered (and last_alert, the subject's latest), so an alert lost in a crash is
-- published again with the same id. Once acknowledged nothing depends on how events
-- were batched: the state is the same whatever the batch boundaries.
--
-- Every key shares the subject's hash tag, so the call touches one cluster slot.
-- Numbers cross the boundary as strings: "%.17g" round-trips a double exactly, and
-- RESP2 would truncate a Lua number to an integer.

local NONE, WATCH, INSPECT = 0, 1, 2
local LEVEL_NAME = {[0] = 'NONE', 'WATCH', 'INSPECT'}
local LEVEL_OF = {NONE = 0, WATCH = 1, INSPECT = 2}
local EVENT_ARGS = 11

local function fmt(x)
  return string.format('%.17g', x)
end

-- Level after applying an event, with hysteresis (DESIGN §6). hold: an immediate
-- INSPECT still holds.
local function threshold_level(L, level, s, hold)
  local up = NONE
  if s >= L.inspect_raise then up = INSPECT elseif s >= L.watch_raise then up = WATCH end
  if up > level then return up end
  if level == INSPECT then
    if hold or s >= L.inspect_clear then return INSPECT end
    if s < L.watch_clear then return NONE end
    return WATCH
  end
  if level == WATCH and s < L.watch_clear then return NONE end
  return level
end

local function alert_identity(al)
  return al.kind .. '|' .. al.level .. '|' .. al.triggered_by
end

local function recent(events_key)
  local out = {}
  if R.recent_max <= 0 then return out end
  local r = redis.call('ZREVRANGE', events_key, 0, R.recent_max - 1, 'WITHSCORES')
  for i = 1, #r, 2 do
    local key, sig, sev = string.match(r[i], '^(%S+) (%d+) (%d+)$')
    out[#out + 1] = {key, sig, sev, r[i + 1]}
  end
  return out
end

local function apply(keys, args)
  local state_key, events_key = keys[1], keys[2]
  local kind = tonumber(args[1])
  local n = tonumber(args[2])
  local L = R.levels[kind]
  local h = redis.call('HMGET', state_key, 'score', 'as_of', 'assurance', 'level',
    'level_since', 'imm_at', 'events_total', 'last_partition', 'last_offset', 'last_alert',
    'duplicates', 'pending_alerts', unpack(R.area_fields))
  local s = tonumber(h[1]) or 0
  local as_of = tonumber(h[2])
  local assurance = tonumber(h[3]) or 0
  local level = LEVEL_OF[h[4]] or NONE
  local level_since = tonumber(h[5]) or 0
  local imm_at = tonumber(h[6])
  local total = tonumber(h[7]) or 0
  local last_p = tonumber(h[8])
  local last_o = tonumber(h[9])
  local last_alert = h[10]
  local dups = tonumber(h[11]) or 0
  local pending = h[12] and cjson.decode(h[12]) or {}
  local area = {}
  for i = 1, #R.area_fields do area[i] = tonumber(h[12 + i]) or 0 end

  local applied, skipped_dup, skipped_redelivery = 0, 0, 0
  local alerts, reemit, reemitted = {}, {}, {}
  local candidates = nil

  for e = 0, n - 1 do
    local b = 2 + e * EVENT_ARGS
    local ekey, sig, sev = args[b + 1], args[b + 2], args[b + 3]
    local a = tonumber(args[b + 4]) + 1
    local t = tonumber(args[b + 5])
    local w = tonumber(args[b + 6])
    local immediate = args[b + 7] == '1'
    local is_assurance = args[b + 8] == '1'
    local p, o = tonumber(args[b + 9]), tonumber(args[b + 10])
    local seen_key = keys[tonumber(args[b + 11])]

    if last_p == p and last_o ~= nil and o <= last_o then
      -- redelivery (a crash or rebalance re-read this offset): re-publish the alert
      -- this very event produced, if it is the one we kept, so none is lost
      skipped_redelivery = skipped_redelivery + 1
      if not candidates then
        candidates = {}
        for _, al in ipairs(pending) do candidates[#candidates + 1] = al end
        if last_alert then candidates[#candidates + 1] = cjson.decode(last_alert) end
      end
      for _, al in ipairs(candidates) do
        local id = alert_identity(al)
        if al.triggered_by == ekey and not reemitted[id] then
          reemitted[id] = true
          reemit[#reemit + 1] = al
        end
      end
    elseif redis.call('SISMEMBER', seen_key, ekey) == 1 then
      -- a partner duplicate: applied once already, whatever the arrival order
      skipped_dup = skipped_dup + 1
      dups = dups + 1
      last_p, last_o = p, o
    else
      redis.call('SADD', seen_key, ekey)
      redis.call('EXPIRE', seen_key, R.seen_ttl)
      if as_of == nil then
        s = w
        area[a] = w
        as_of = t
      elseif t >= as_of then
        local f = 2 ^ (-(t - as_of) / R.half_life)
        s = s * f + w
        for i = 1, #area do area[i] = area[i] * f end
        area[a] = area[a] + w
        as_of = t
      else
        local dw = w * 2 ^ (-(as_of - t) / R.half_life)
        s = s + dw
        area[a] = area[a] + dw
      end
      if is_assurance then assurance = assurance + 1 end
      total = total + 1
      applied = applied + 1
      last_p, last_o = p, o

      local cutoff = as_of - R.window
      if t >= cutoff then
        redis.call('ZADD', events_key, t, ekey .. ' ' .. sig .. ' ' .. sev)
      end
      redis.call('ZREMRANGEBYSCORE', events_key, '-inf', '(' .. fmt(cutoff))
      local card = redis.call('ZCARD', events_key)
      if card > R.events_max then
        redis.call('ZREMRANGEBYRANK', events_key, 0, card - R.events_max - 1)
      end

      local new_level, reason = level, 'THRESHOLD'
      if immediate and as_of - t < R.hold then
        -- "significant risk of harm": INSPECT at once, held for R.hold from the
        -- latest immediate event
        if imm_at == nil or t > imm_at then imm_at = t end
        if level < INSPECT then new_level, reason = INSPECT, 'IMMEDIATE' end
      else
        local hold = imm_at ~= nil and as_of - imm_at < R.hold
        new_level = threshold_level(L, level, s, hold)
      end
      if new_level ~= level then
        local al = {
          kind = (new_level > level) and 'RAISED' or 'CLEARED',
          level = LEVEL_NAME[new_level], previous_level = LEVEL_NAME[level],
          score = fmt(s), as_of = fmt(as_of), triggered_by = ekey, reason = reason,
          recent = recent(events_key), area_scores = {}
        }
        for i = 1, #area do al.area_scores[i] = fmt(area[i]) end
        alerts[#alerts + 1] = al
        level = new_level
        level_since = as_of
      end
    end
  end

  local fields = {'score', fmt(s), 'assurance', assurance, 'level', LEVEL_NAME[level],
    'level_since', fmt(level_since), 'events_total', total, 'duplicates', dups}
  if as_of ~= nil then
    fields[#fields + 1] = 'as_of'; fields[#fields + 1] = fmt(as_of)
  end
  if imm_at ~= nil then
    fields[#fields + 1] = 'imm_at'; fields[#fields + 1] = fmt(imm_at)
  end
  if last_p ~= nil then
    fields[#fields + 1] = 'last_partition'; fields[#fields + 1] = last_p
    fields[#fields + 1] = 'last_offset'; fields[#fields + 1] = fmt(last_o)
  end
  for i = 1, #area do
    fields[#fields + 1] = R.area_fields[i]; fields[#fields + 1] = fmt(area[i])
  end
  if #alerts > 0 then
    fields[#fields + 1] = 'last_alert'; fields[#fields + 1] = cjson.encode(alerts[#alerts])
    for _, al in ipairs(alerts) do pending[#pending + 1] = al end
    fields[#fields + 1] = 'pending_alerts'; fields[#fields + 1] = cjson.encode(pending)
  end
  redis.call('HSET', state_key, unpack(fields))

  local out = {fmt(s), fmt(as_of or 0), LEVEL_NAME[level], applied, skipped_dup,
    skipped_redelivery, #alerts, #reemit}
  for _, al in ipairs(alerts) do out[#out + 1] = cjson.encode(al) end
  for _, al in ipairs(reemit) do out[#out + 1] = cjson.encode(al) end
  return out
end

-- FCALL <ack> 1 <state> <kind|level|triggered_by>...: the scorer delivered these alerts.
local function ack(keys, args)
  local p = redis.call('HGET', keys[1], 'pending_alerts')
  if not p then return 0 end
  local delivered = {}
  for i = 1, #args do delivered[args[i]] = true end
  local keep = {}
  local list = cjson.decode(p)
  for _, al in ipairs(list) do
    if not delivered[alert_identity(al)] then keep[#keep + 1] = al end
  end
  if #keep == 0 then
    redis.call('HDEL', keys[1], 'pending_alerts')
  else
    redis.call('HSET', keys[1], 'pending_alerts', cjson.encode(keep))
  end
  return #list - #keep
end

redis.register_function(FN_NAME, apply)
redis.register_function(ACK_NAME, ack)
