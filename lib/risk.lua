-- caresignal risk state: the one Redis function that applies a subject's events
-- (docs/contract/risk-model.md to docs/contract/redis-layout.md). The C side prepends "#!lua name=...", a table R of the rules and lib/risk_common.lua
-- (thresholds, half-life, windows, names) and registers the function as FN_NAME.
--
-- FCALL <fn> <2+m> <state> <events> <seen month 1> .. <seen month m>
--       <subject kind index> <n> then n events of 10 arguments each:
--       event_key signal severity area occurred_at weight immediate assurance partition
--       offset, plus one more: the index (3..) of the event's seen key in KEYS.
-- Reply: score, as_of, level, applied, partner duplicates, redeliveries, offset
--        regressions (unseen events applied at or below the subject's last offset on
--        their partition), n new alerts, n re-emitted alerts, then the alerts as JSON.
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
--
-- Cost (bench/README.md has the profile): Redis runs this once per subject per batch,
-- and its time is the scorer's ceiling. Most of it is per redis.call (argument and reply
-- conversion, propagation to the AOF) and per number formatted, so the hot path makes
-- one call where it can and formats nothing it need not: SADD's reply is the duplicate
-- check; each seen set gets its EXPIRE once per call (time is frozen within a call, so
-- the expiry is the same as after every SADD); the event list is trimmed once per call
-- (and before an alert reads it) instead of after every event, which leaves the same
-- members (both trims cut from the low end of the same order); arguments go to Redis as
-- the strings they arrived as; the state hash is read once, last_alert only when a
-- redelivery needs it, and written once with only the fields whose value changed.

local LEVEL_OF = {NONE = 0, WATCH = 1, INSPECT = 2}
local EVENT_ARGS = 11
local SEEN_TTL = '' .. R.seen_ttl
-- ZREMRANGEBYRANK 0 -(max+1) keeps the highest R.events_max members (nothing when
-- fewer): the cap without a ZCARD
local CAP_END = '' .. -(R.events_max + 1)



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

-- The event list as docs/contract/redis-layout.md defines it: members older than as_of - window go, then
-- all but the newest R.events_max. Trimming by score and by rank both cut a prefix of
-- the (score, member) order, so doing it once after several additions keeps exactly the
-- members that trimming after each addition keeps.
local function trim(events_key, cutoff)
  redis.call('ZREMRANGEBYSCORE', events_key, '-inf', '(' .. ifmt(cutoff))
  redis.call('ZREMRANGEBYRANK', events_key, 0, CAP_END)
end

local function apply(keys, args)
  local state_key, events_key = keys[1], keys[2]
  local kind = num(args[1])
  local n = num(args[2])
  local L = R.levels[kind]
  -- last_alert (an alert's JSON) is read only if a redelivery needs it
  local h = redis.call('HMGET', state_key, 'score', 'as_of', 'assurance', 'level',
    'level_since', 'imm_at', 'events_total', 'last_partition', 'last_offset',
    'duplicates', 'pending_alerts', unpack(R.area_fields))
  local s = tonumber(h[1]) or 0
  local as_of = tonumber(h[2])
  local assurance = num(h[3]) or 0
  local level = LEVEL_OF[h[4]] or NONE
  local level_since = nil -- set when the level changes; the stored value stands otherwise
  local imm_at = tonumber(h[6])
  local total = num(h[7]) or 0
  local last_p = num(h[8])
  local last_o = tonumber(h[9])
  local dups = num(h[10]) or 0
  local pending_json = h[11] -- decoded only when needed
  local area, area0 = {}, {}
  for i = 1, #R.area_fields do
    area[i] = tonumber(h[11 + i]) or 0
    area0[i] = area[i]
  end
  local s0, as_of0, assurance0, level0, imm_at0, total0, last_p0, last_o0, dups0 =
    s, as_of, assurance, level, imm_at, total, last_p, last_o, dups

  local applied, skipped_dup, skipped_redelivery, regressions = 0, 0, 0, 0
  -- tables only when needed: most calls raise nothing, re-emit nothing, and write one
  -- seen set (exp1)
  local alerts, reemit, reemitted, candidates = nil, nil, nil, nil
  local exp1, exp_more = nil, nil -- seen keys written by this call
  local untrimmed = false -- events applied since the list was last trimmed

  for e = 0, n - 1 do
    local b = 2 + e * EVENT_ARGS
    local ekey = args[b + 1]
    local p, o = num(args[b + 9]), tonumber(args[b + 10])

    local seen_key = keys[num(args[b + 11])]
    -- The seen set decides whether the event was applied, never the offset alone: offsets
    -- start again when intel.events is recreated or migrated, and an unseen event is
    -- applied whatever its offset (counted as an offset regression). SADD's reply is
    -- the check.
    local behind = last_p == p and last_o ~= nil and o <= last_o
    if redis.call('SADD', seen_key, ekey) == 0 then
      if behind then
        -- redelivery (a crash or rebalance re-read this offset): re-publish the alert
        -- this very event produced, if it is the one we kept, so none is lost
        skipped_redelivery = skipped_redelivery + 1
        if not candidates then
          candidates = pending_json and cjson.decode(pending_json) or {}
          reemit, reemitted = {}, {}
          -- the value at the start of the call: the hash is written at its end
          local last_alert = redis.call('HGET', state_key, 'last_alert')
          if last_alert then candidates[#candidates + 1] = cjson.decode(last_alert) end
        end
        for _, al in ipairs(candidates) do
          local id = alert_identity(al)
          if al.triggered_by == ekey and not reemitted[id] then
            reemitted[id] = true
            reemit[#reemit + 1] = al
          end
        end
      else
        -- a partner duplicate: applied once already, whatever the arrival order
        skipped_dup = skipped_dup + 1
        dups = dups + 1
        last_p, last_o = p, o
      end
    else
      if behind then regressions = regressions + 1 end
      if exp1 == nil then
        exp1 = seen_key
      elseif seen_key ~= exp1 then
        exp_more = exp_more or {}
        if not exp_more[seen_key] then
          exp_more[seen_key] = true
          exp_more[#exp_more + 1] = seen_key
        end
      end
      local sig, sev = args[b + 2], args[b + 3]
      local a = num(args[b + 4]) + 1
      local t_arg = args[b + 5]
      local t = tonumber(t_arg)
      local w = tonumber(args[b + 6])
      local prev_cutoff = as_of and as_of - R.window
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
      if args[b + 8] == '1' then assurance = assurance + 1 end
      total = total + 1
      applied = applied + 1
      last_p, last_o = p, o

      local cutoff = as_of - R.window
      if t >= cutoff then
        local member = ekey .. ' ' .. sig .. ' ' .. sev
        if redis.call('ZADD', events_key, 'NX', t_arg, member) == 0 then
          -- the member is there already (the same event resent with another
          -- occurred_at, in another month): its score changes, which the one-trim
          -- argument above does not cover, so bring the list to what trimming after
          -- every event would have left before this one, then update it
          if untrimmed then trim(events_key, prev_cutoff) end
          redis.call('ZADD', events_key, t_arg, member)
        end
      end
      untrimmed = true

      local new_level, reason = level, 'THRESHOLD'
      if args[b + 7] == '1' and as_of - t < R.hold then
        -- "significant risk of harm": INSPECT at once, held for R.hold from the
        -- latest immediate event
        if imm_at == nil or t > imm_at then imm_at = t end
        if level < INSPECT then new_level, reason = INSPECT, 'IMMEDIATE' end
      else
        local hold = imm_at ~= nil and as_of - imm_at < R.hold
        new_level = threshold_level(L, level, s, hold)
      end
      if new_level ~= level then
        -- the alert's recent events are the list as it stands after this event
        trim(events_key, cutoff)
        untrimmed = false
        local al = {
          kind = (new_level > level) and 'RAISED' or 'CLEARED',
          level = LEVEL_NAME[new_level], previous_level = LEVEL_NAME[level],
          score = fmt(s), as_of = ifmt(as_of), triggered_by = ekey, reason = reason,
          recent = recent(events_key), area_scores = {}
        }
        for i = 1, #area do al.area_scores[i] = fmt(area[i]) end
        alerts = alerts or {}
        alerts[#alerts + 1] = al
        level = new_level
        level_since = as_of
      end
    end
  end
  if untrimmed then trim(events_key, as_of - R.window) end
  if exp1 then redis.call('EXPIRE', exp1, SEEN_TTL) end
  if exp_more then
    for _, k in ipairs(exp_more) do redis.call('EXPIRE', k, SEEN_TTL) end
  end

  -- the state hash: every field whose value changed (a field not there yet has
  -- changed); the strings are those fmt() would give
  local s_str = (s == s0 and h[1]) or fmt(s)
  local as_of_str = as_of ~= nil and ((as_of == as_of0 and h[2]) or ifmt(as_of)) or nil
  local f, nf = {}, 0
  if s_str ~= h[1] then f[nf + 1] = 'score'; f[nf + 2] = s_str; nf = nf + 2 end
  if assurance ~= assurance0 or not h[3] then
    f[nf + 1] = 'assurance'; f[nf + 2] = ifmt(assurance); nf = nf + 2
  end
  if level ~= level0 or not h[4] then
    f[nf + 1] = 'level'; f[nf + 2] = LEVEL_NAME[level]; nf = nf + 2
  end
  if level_since ~= nil or not h[5] then
    f[nf + 1] = 'level_since'; f[nf + 2] = ifmt(level_since or 0); nf = nf + 2
  end
  if total ~= total0 or not h[7] then
    f[nf + 1] = 'events_total'; f[nf + 2] = ifmt(total); nf = nf + 2
  end
  if dups ~= dups0 or not h[10] then
    f[nf + 1] = 'duplicates'; f[nf + 2] = ifmt(dups); nf = nf + 2
  end
  if as_of_str ~= nil and as_of_str ~= h[2] then
    f[nf + 1] = 'as_of'; f[nf + 2] = as_of_str; nf = nf + 2
  end
  if imm_at ~= nil and (imm_at ~= imm_at0 or not h[6]) then
    f[nf + 1] = 'imm_at'; f[nf + 2] = ifmt(imm_at); nf = nf + 2
  end
  if last_p ~= nil then
    if last_p ~= last_p0 or not h[8] then
      f[nf + 1] = 'last_partition'; f[nf + 2] = ifmt(last_p); nf = nf + 2
    end
    if last_o ~= last_o0 or not h[9] then
      f[nf + 1] = 'last_offset'; f[nf + 2] = ifmt(last_o); nf = nf + 2
    end
  end
  for i = 1, #area do
    if area[i] ~= area0[i] or not h[11 + i] then
      f[nf + 1] = R.area_fields[i]; f[nf + 2] = fmt(area[i]); nf = nf + 2
    end
  end
  if alerts then
    f[nf + 1] = 'last_alert'; f[nf + 2] = cjson.encode(alerts[#alerts]); nf = nf + 2
    local pending = pending_json and cjson.decode(pending_json) or {}
    for _, al in ipairs(alerts) do pending[#pending + 1] = al end
    f[nf + 1] = 'pending_alerts'; f[nf + 2] = cjson.encode(pending); nf = nf + 2
  end
  if nf > 0 then redis.call('HSET', state_key, unpack(f)) end

  local out = {s_str, as_of_str or '0', LEVEL_NAME[level], applied, skipped_dup,
    skipped_redelivery, regressions, alerts and #alerts or 0, reemit and #reemit or 0}
  if alerts then
    for _, al in ipairs(alerts) do out[#out + 1] = cjson.encode(al) end
  end
  if reemit then
    for _, al in ipairs(reemit) do out[#out + 1] = cjson.encode(al) end
  end
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
