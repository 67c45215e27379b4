-- caresignal risk state, layout 2: the one Redis function that applies a subject's
-- events (docs/contract/risk-model.md) to its state (docs/contract/redis-layout.md).
-- The C side (lib/score.c) prepends "#!lua name=..." and a table R of the rules and
-- registers the functions as FN_NAME and ACK_NAME.
--
-- FCALL <fn> 1 <state> <subject kind index> <n> then n events of 13 arguments each:
--       digest (8 bytes: SHA-256 of "YYYY-MM" NUL event_key, cut to 64 bits), month
--       (year * 12 + month - 1 of occurred_at, UTC), key prefix ("SOURCE:org:"),
--       partner ref (the rest of the event_key), signal, severity, area, occurred_at,
--       weight, immediate, assurance, partition, offset.
-- Reply (the same as layout 1's): score, as_of, level, applied, partner duplicates,
--       redeliveries, offset regressions (unseen events applied at or below the
--       subject's last offset on their partition), n new alerts, n re-emitted alerts,
--       then the alerts as JSON.
--
-- The whole state of a subject is ONE string, read with one GET and written with one
-- SET per call. Cost (bench/README.md has the profile): Redis's Lua hashes every byte of
-- every string it creates (~1.4 ns a byte here), and each redis.call and C function call
-- has a fixed price, so the hot path creates few strings, walks no more records than it
-- must, and makes two redis.calls. The value, little-endian (struct formats):
--   header  HDR below: version, level, flags (1 immediate_at set, 2 position set),
--           score, the four area scores, as_of, level_since, immediate_at, assurance,
--           events_total, duplicates, last_partition, last_offset, then the section
--           sizes: prefix bytes, list records, list bytes, months, digests
--   prefixes  [len B][bytes] each: the "SOURCE:org:" parts of event keys, so a record
--           holds one byte instead of them (index 0 is the first)
--   list    the 90-day event list, newest first, ordered as layout 1's sorted set
--           (occurred_at, then "<event_key> <signal> <severity>" compared bytewise),
--           descending: [len B][occurred_at i6][signal B][severity B][prefix B][ref]
--           [len B], len = 11 + #ref, so it can be walked from either end
--   months  [month H][count I4] each, oldest first: the de-duplication record's months
--   digests 8 bytes each, grouped by month in the months' order
--   alerts  [has last_alert B][last_alert][n pending H][pending alerts]; an alert is
--           [kind B][level B][previous B][reason B][score d][as_of i8][4 area d]
--           [prefix B][ref len B][ref][n recent B] then per recent event
--           [occurred_at i6][signal B][severity B][prefix B][ref len B][ref]
-- A month of digests is forgotten when as_of - seen_ttl has passed its end: event time,
-- not the wall clock, so a replay forgets exactly as the live run did, and nothing
-- within the 396-day horizon that TIME_RANGE enforces is forgotten.
--
-- Alerts a call produces are kept pending until the scorer has delivered them and
-- calls ACK_NAME; a redelivered event re-emits the pending alert it triggered (and
-- last_alert, the subject's latest), so an alert lost in a crash is published again
-- with the same id. Once acknowledged nothing depends on how events were batched.
-- Numbers cross the boundary as strings: "%.17g" round-trips a double exactly.

local NONE, WATCH, INSPECT = 0, 1, 2
local LEVEL_NAME = {[0] = 'NONE', 'WATCH', 'INSPECT'}
local KIND_NAME = {[0] = 'RAISED', 'CLEARED'}
local REASON_NAME = {[0] = 'THRESHOLD', 'IMMEDIATE'}
local VERSION = 2
local HDR = '<BBBdddddi8i8i8I4I4I4i4i8HHI4HI4'
local EVENT_ARGS = 13
local SEEN_TTL_MS = R.seen_ttl * 1000
-- bound at the first call: the libraries are not reachable while the library loads
local HDR_SIZE, byte, char, sub, find, pack, unpack
local function bind()
  HDR_SIZE = struct.size(HDR)
  byte, char, sub, find = string.byte, string.char, string.sub, string.find
  pack, unpack = struct.pack, struct.unpack
end

local function fmt(x)
  return string.format('%.17g', x)
end

local SMALL, SMALL_STR = {}, {}
for i = 0, 255 do
  SMALL['' .. i] = i
  SMALL_STR[i] = '' .. i
end
local function num(x)
  return SMALL[x] or tonumber(x)
end

local INT_EXACT = 2 ^ 53
local function ifmt(x)
  local small = SMALL_STR[x]
  if small then return small end
  if x % 1 == 0 and x < INT_EXACT and x > -INT_EXACT then
    return string.format('%d', x)
  end
  return fmt(x)
end

-- year * 12 + month - 1 of a time in ms, UTC (days to civil date, proleptic Gregorian)
local function month_index(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) -
    math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y * 12 + m - 1
end

-- Level after applying an event, with hysteresis (docs/contract/risk-model.md). hold: an
-- immediate INSPECT still holds.
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

-- Bytewise comparison (memcmp, then length), as a sorted set orders its members: Lua's
-- own < follows the server's collation locale.
local function bytes_less(a, b)
  local n = #a < #b and #a or #b
  for i = 1, n do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function fail(msg)
  return redis.error_reply('CS_STATE ' .. msg)
end

-- ------------------------------------------------------------------ the state value

-- The state at \p key as a table (nil: none; string: an error message).
local function load(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' then
    return 'the state key holds another type (' .. tostring(v.err) ..
      '): is this a namespace of another layout? rebuild into a new namespace'
  end
  if not v then return nil end
  if #v < HDR_SIZE or byte(v, 1) ~= VERSION then
    return 'the state value is not layout ' .. VERSION
  end
  local st = {}
  local _, pos
  _, st.level, st.flags, st.s, st.a1, st.a2, st.a3, st.a4, st.as_of, st.level_since,
    st.imm_at, st.assurance, st.total, st.dups, st.last_p, st.last_o, st.np, st.nlist,
    st.nl, st.nm, st.nd, pos = unpack(HDR, v)
  local list_at = pos + st.np
  local months_at = list_at + st.nl
  local dig_at = months_at + 6 * st.nm
  local alerts_at = dig_at + 8 * st.nd
  if alerts_at > #v + 1 then return 'the state value is truncated' end
  local prefixes = {}
  local p = pos
  while p < list_at do
    local len = byte(v, p)
    prefixes[#prefixes + 1] = sub(v, p + 1, p + len)
    p = p + 1 + len
  end
  st.prefixes = prefixes
  st.list = sub(v, list_at, months_at - 1)
  local months, counts = {}, {}
  for i = 0, st.nm - 1 do
    months[i + 1], counts[i + 1] = unpack('<HI4', v, months_at + 6 * i)
  end
  st.months, st.counts = months, counts
  st.dig = sub(v, dig_at, alerts_at - 1)
  st.alerts_raw = alerts_at <= #v and sub(v, alerts_at) or nil
  if st.flags % 2 == 0 then st.imm_at = nil end
  if st.flags < 2 then st.last_p, st.last_o = nil, nil end
  return st
end

local function new_state()
  return {level = NONE, s = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, level_since = 0,
    assurance = 0, total = 0, dups = 0, nlist = 0, prefixes = {}, list = '', months = {},
    counts = {}, dig = ''}
end

-- alerts section codec
local ALERT_HEAD = '<BBBBdi8ddddBB'
local function decode_alert(st, raw, p)
  local al = {}
  local k, l, pl, r, s, as_of, a1, a2, a3, a4, pidx, len
  k, l, pl, r, s, as_of, a1, a2, a3, a4, pidx, len, p = unpack(ALERT_HEAD, raw, p)
  al.kind, al.level, al.previous_level, al.reason = KIND_NAME[k], LEVEL_NAME[l],
    LEVEL_NAME[pl], REASON_NAME[r]
  al.score, al.as_of = s, as_of
  al.area_scores = {a1, a2, a3, a4}
  al.triggered_by = st.prefixes[pidx + 1] .. sub(raw, p, p + len - 1)
  al.pidx, al.ref = pidx, sub(raw, p, p + len - 1)
  p = p + len
  local nrec = byte(raw, p)
  p = p + 1
  local recent = {}
  for i = 1, nrec do
    local t, sig, sev, rp, rl
    t, sig, sev, rp, rl, p = unpack('<i6BBBB', raw, p)
    recent[i] = {t, sig, sev, rp, sub(raw, p, p + rl - 1)}
    p = p + rl
  end
  al.recent = recent
  return al, p
end

local KIND_CODE = {RAISED = 0, CLEARED = 1}
local LEVEL_CODE = {NONE = 0, WATCH = 1, INSPECT = 2}
local REASON_CODE = {THRESHOLD = 0, IMMEDIATE = 1}
local function encode_alert(al, out)
  local a = al.area_scores
  out[#out + 1] = pack(ALERT_HEAD, KIND_CODE[al.kind], LEVEL_CODE[al.level],
    LEVEL_CODE[al.previous_level], REASON_CODE[al.reason], al.score, al.as_of, a[1], a[2],
    a[3], a[4], al.pidx, #al.ref)
  out[#out + 1] = al.ref
  out[#out + 1] = char(#al.recent)
  for _, e in ipairs(al.recent) do
    out[#out + 1] = pack('<i6BBBB', e[1], e[2], e[3], e[4], #e[5])
    out[#out + 1] = e[5]
  end
end

-- last_alert (or nil) and the pending alerts, decoded
local function decode_alerts(st)
  local raw = st.alerts_raw
  if not raw then return nil, {} end
  local last, p = nil, 2
  if byte(raw, 1) == 1 then last, p = decode_alert(st, raw, 2) end
  local n
  n, p = unpack('<H', raw, p)
  local pending = {}
  for i = 1, n do pending[i], p = decode_alert(st, raw, p) end
  return last, pending
end

local function encode_alerts(last, pending)
  if not last and #pending == 0 then return nil end
  local out = {last and '\1' or '\0'}
  if last then encode_alert(last, out) end
  out[#out + 1] = pack('<H', #pending)
  for _, al in ipairs(pending) do encode_alert(al, out) end
  return table.concat(out)
end

-- The alert as the reply carries it (layout 1's JSON: numbers as strings)
local function alert_json(st, al)
  local recent = {}
  for i, e in ipairs(al.recent) do
    recent[i] = {st.prefixes[e[4] + 1] .. e[5], SMALL_STR[e[2]], SMALL_STR[e[3]],
      ifmt(e[1])}
  end
  local areas = {}
  for i = 1, 4 do areas[i] = fmt(al.area_scores[i]) end
  return cjson.encode({kind = al.kind, level = al.level,
    previous_level = al.previous_level, score = fmt(al.score), as_of = ifmt(al.as_of),
    triggered_by = al.triggered_by, reason = al.reason, recent = recent,
    area_scores = areas})
end

local function alert_identity(al)
  return al.kind .. '|' .. al.level .. '|' .. al.triggered_by
end

-- Every prefix a record or alert (in the lists given) refers to, renumbered: the table
-- is full
local function compact_prefixes(st, ...)
  local keep, map, old = {}, {}, st.prefixes
  local function use(i)
    if not map[i] then
      keep[#keep + 1] = old[i + 1]
      map[i] = #keep - 1
    end
    return map[i]
  end
  local out, p, list = {}, 1, st.list
  while p <= #list do
    local len = byte(list, p)
    local pi = byte(list, p + 9)
    out[#out + 1] = sub(list, p, p + 8) .. char(use(pi)) .. sub(list, p + 10, p + len - 1)
    p = p + len
  end
  st.list = table.concat(out)
  for _, alerts in ipairs({...}) do
    for _, al in pairs(alerts) do
      al.pidx = use(al.pidx)
      for _, e in ipairs(al.recent) do e[4] = use(e[4]) end
    end
  end
  st.prefixes = keep
end

local function write(key, st, alerts_raw)
  local flags = (st.imm_at and 1 or 0) + (st.last_p and 2 or 0)
  local pre = {}
  for i, p in ipairs(st.prefixes) do pre[i] = char(#p) .. p end
  local pre_s = table.concat(pre)
  local mon = {}
  for i = 1, #st.months do mon[i] = pack('<HI4', st.months[i], st.counts[i]) end
  redis.call('SET', key, pack(HDR, VERSION, st.level, flags, st.s, st.a1, st.a2, st.a3,
    st.a4, st.as_of, st.level_since, st.imm_at or 0, st.assurance, st.total, st.dups,
    st.last_p or 0, st.last_o or 0, #pre_s, st.nlist, #st.list, #st.months,
    #st.dig / 8) .. pre_s .. st.list .. table.concat(mon) .. st.dig ..
    (alerts_raw or ''))
end

-- ------------------------------------------------------------------ the list

-- Position of the record that starts exactly at \p at, walking from the front (nil: none)
local function record_at(list, at)
  local p = 1
  while p < at do p = p + byte(list, p) end
  return p == at
end

-- The list, newest first, with \p rec (occurred_at t, member m) in its place
local function list_insert(st, t, m, rec)
  local list, p = st.list, 1
  while p <= #list do
    local rt = unpack('<i6', list, p + 1)
    if rt < t then break end
    if rt == t then
      local len = byte(list, p)
      local pi = byte(list, p + 9)
      local rm = st.prefixes[pi + 1] .. sub(list, p + 10, p + len - 2) .. ' ' ..
        SMALL_STR[byte(list, p + 7)] .. ' ' .. SMALL_STR[byte(list, p + 8)]
      if bytes_less(rm, m) then break end
    end
    p = p + byte(list, p)
  end
  if p == 1 then
    st.list = rec .. list
  elseif p > #list then
    st.list = list .. rec
  else
    st.list = sub(list, 1, p - 1) .. rec .. sub(list, p)
  end
  st.nlist = st.nlist + 1
end

-- Trims the list as layout 1 did after every event: records older than cutoff go, then
-- all but the newest R.events_max
local function list_trim(st, cutoff)
  local list = st.list
  local e = #list
  local n = st.nlist
  while e > 0 do
    local len = byte(list, e)
    local start = e - len + 1
    if n <= R.events_max and unpack('<i6', list, start + 1) >= cutoff then break end
    e = start - 1
    n = n - 1
  end
  if n ~= st.nlist then
    st.list = sub(list, 1, e)
    st.nlist = n
  end
end

-- The first R.recent_max records, as an alert's recent list
local function list_recent(st)
  local out, list, p = {}, st.list, 1
  while p <= #list and #out < R.recent_max do
    local len, t, sig, sev, pi = unpack('<Bi6BBB', list, p)
    out[#out + 1] = {t, sig, sev, pi, sub(list, p + 10, p + len - 2)}
    p = p + len
  end
  return out
end

-- ------------------------------------------------------------------ de-duplication

-- Is the digest in the record? (a match must sit on a digest boundary)
local function seen(dig, d)
  local at = find(dig, d, 1, true)
  while at do
    if at % 8 == 1 then return true end
    at = find(dig, d, at + 1, true)
  end
  return false
end

local function seen_add(st, month, d)
  local months, counts = st.months, st.counts
  local off, i = 0, 1
  while i <= #months and months[i] <= month do
    off = off + counts[i]
    i = i + 1
  end
  if i > 1 and months[i - 1] == month then
    counts[i - 1] = counts[i - 1] + 1
  else
    table.insert(months, i, month)
    table.insert(counts, i, 1)
  end
  local dig = st.dig
  if off * 8 == #dig then
    st.dig = dig .. d
  else
    st.dig = sub(dig, 1, off * 8) .. d .. sub(dig, off * 8 + 1)
  end
end

-- Forgets the months that ended before as_of - seen_ttl
local function seen_prune(st)
  local months = st.months
  if #months == 0 or st.as_of == nil then return end
  local oldest = month_index(st.as_of - SEEN_TTL_MS)
  local drop, k = 0, 0
  while k < #months and months[k + 1] < oldest do
    k = k + 1
    drop = drop + st.counts[k]
  end
  if k == 0 then return end
  for _ = 1, k do
    table.remove(months, 1)
    table.remove(st.counts, 1)
  end
  st.dig = sub(st.dig, drop * 8 + 1)
end

-- ------------------------------------------------------------------ apply

local function apply(keys, args)
  if not byte then bind() end
  local key = keys[1]
  local kind = num(args[1])
  local n = num(args[2])
  local L = R.levels[kind]
  local st = load(key)
  if type(st) == 'string' then return fail(st) end
  local fresh = st == nil
  st = st or new_state()
  local s, as_of, level, imm_at = st.s, st.as_of, st.level, st.imm_at
  local area = {st.a1, st.a2, st.a3, st.a4}
  if fresh then as_of = nil end
  local last_p, last_o = st.last_p, st.last_o
  local dirty = false

  local applied, skipped_dup, skipped_redelivery, regressions = 0, 0, 0, 0
  -- decoded only when needed: most calls raise nothing and re-emit nothing
  local alerts, reemit, reemitted, candidates = nil, nil, nil, nil
  local last0, pending0 = nil, nil
  local prefix_idx = {}
  -- the index of a key prefix in the subject's table, added if new (nil: the table is
  -- full of prefixes still referred to)
  local function prefix_of(prefix)
    local pi = prefix_idx[prefix]
    if pi then return pi end
    for i, x in ipairs(st.prefixes) do
      if x == prefix then
        prefix_idx[prefix] = i - 1
        return i - 1
      end
    end
    if #st.prefixes == 255 then
      if not last0 then last0, pending0 = decode_alerts(st) end
      compact_prefixes(st, {last0}, pending0, alerts or {})
      st.alerts_raw = encode_alerts(last0, pending0)
      prefix_idx = {}
      if #st.prefixes == 255 then return nil end
    end
    st.prefixes[#st.prefixes + 1] = prefix
    prefix_idx[prefix] = #st.prefixes - 1
    return #st.prefixes - 1
  end

  for e = 0, n - 1 do
    local b = 2 + e * EVENT_ARGS
    local d = args[b + 1]
    local p, o = num(args[b + 12]), tonumber(args[b + 13])
    -- the de-duplication record decides whether the event was applied, never the offset
    -- alone: offsets start again when intel.events is recreated or migrated, and an
    -- unseen event is applied whatever its offset (counted as an offset regression)
    local behind = last_p == p and last_o ~= nil and o <= last_o
    if seen(st.dig, d) then
      if behind then
        -- redelivery (a crash or rebalance re-read this offset): re-publish the alert
        -- this very event produced, if it is one we kept, so none is lost
        skipped_redelivery = skipped_redelivery + 1
        if not candidates then
          last0, pending0 = decode_alerts(st)
          candidates = {}
          for _, al in ipairs(pending0) do candidates[#candidates + 1] = al end
          if last0 then candidates[#candidates + 1] = last0 end
          reemit, reemitted = {}, {}
        end
        local ekey = args[b + 3] .. args[b + 4]
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
        st.dups = st.dups + 1
        last_p, last_o = p, o
        dirty = true
      end
    else
      dirty = true
      if behind then regressions = regressions + 1 end
      seen_add(st, tonumber(args[b + 2]), d)
      local prefix, ref = args[b + 3], args[b + 4]
      local sig, sev = num(args[b + 5]), num(args[b + 6])
      local a = num(args[b + 7]) + 1
      local t = tonumber(args[b + 8])
      local w = tonumber(args[b + 9])
      if as_of == nil then
        s = w
        area[a] = w
        as_of = t
      elseif t >= as_of then
        local f = 2 ^ (-(t - as_of) / R.half_life)
        s = s * f + w
        for i = 1, 4 do area[i] = area[i] * f end
        area[a] = area[a] + w
        as_of = t
      else
        local dw = w * 2 ^ (-(as_of - t) / R.half_life)
        s = s + dw
        area[a] = area[a] + dw
      end
      if args[b + 11] == '1' then st.assurance = st.assurance + 1 end
      st.total = st.total + 1
      applied = applied + 1
      last_p, last_o = p, o

      local cutoff = as_of - R.window
      if t >= cutoff then
        local pi = prefix_of(prefix)
        if not pi then return fail('more than 255 partner organisations in the 90-day list') end
        local len = 11 + #ref
        -- the same member (event_key, signal, severity) already listed — the event
        -- resent with another occurred_at, in another month — moves
        local probe = char(sig, sev, pi) .. ref .. char(len)
        local at = find(st.list, probe, 1, true)
        while at do
          if record_at(st.list, at - 7) then
            st.list = sub(st.list, 1, at - 8) .. sub(st.list, at - 7 + len)
            st.nlist = st.nlist - 1
            break
          end
          at = find(st.list, probe, at + 1, true)
        end
        local m = prefix .. ref .. ' ' .. SMALL_STR[sig] .. ' ' .. SMALL_STR[sev]
        list_insert(st, t, m, char(len) .. pack('<i6BBB', t, sig, sev, pi) .. ref ..
          char(len))
      end
      list_trim(st, cutoff)

      local new_level, reason = level, 'THRESHOLD'
      if args[b + 10] == '1' and as_of - t < R.hold then
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
        local pi = prefix_of(prefix)
        if not pi then return fail('more than 255 partner organisations in the 90-day list') end
        local al = {
          kind = (new_level > level) and 'RAISED' or 'CLEARED',
          level = LEVEL_NAME[new_level], previous_level = LEVEL_NAME[level],
          score = s, as_of = as_of, triggered_by = prefix .. ref, reason = reason,
          recent = list_recent(st), area_scores = {area[1], area[2], area[3], area[4]},
          pidx = pi, ref = ref
        }
        alerts = alerts or {}
        alerts[#alerts + 1] = al
        level = new_level
        st.level_since = as_of
      end
    end
  end

  if dirty then
    st.s, st.as_of, st.level, st.imm_at = s, as_of, level, imm_at
    st.a1, st.a2, st.a3, st.a4 = area[1], area[2], area[3], area[4]
    st.last_p, st.last_o = last_p, last_o
    seen_prune(st)
    local alerts_raw = st.alerts_raw
    if alerts then
      if not last0 then last0, pending0 = decode_alerts(st) end
      local pending = {}
      for _, al in ipairs(pending0) do pending[#pending + 1] = al end
      for _, al in ipairs(alerts) do pending[#pending + 1] = al end
      alerts_raw = encode_alerts(alerts[#alerts], pending)
    end
    write(key, st, alerts_raw)
  end

  local out = {fmt(s), as_of and ifmt(as_of) or '0', LEVEL_NAME[level], applied,
    skipped_dup, skipped_redelivery, regressions, alerts and #alerts or 0,
    reemit and #reemit or 0}
  if alerts then
    for _, al in ipairs(alerts) do out[#out + 1] = alert_json(st, al) end
  end
  if reemit then
    for _, al in ipairs(reemit) do out[#out + 1] = alert_json(st, al) end
  end
  return out
end

-- FCALL <ack> 1 <state> <kind|level|triggered_by>...: the scorer delivered these alerts.
local function ack(keys, args)
  if not byte then bind() end
  local st = load(keys[1])
  if type(st) == 'string' then return fail(st) end
  if not st or not st.alerts_raw then return 0 end
  local last, pending = decode_alerts(st)
  if #pending == 0 then return 0 end
  local delivered = {}
  for i = 1, #args do delivered[args[i]] = true end
  local keep = {}
  for _, al in ipairs(pending) do
    if not delivered[alert_identity(al)] then keep[#keep + 1] = al end
  end
  if #keep ~= #pending then write(keys[1], st, encode_alerts(last, keep)) end
  return #pending - #keep
end

redis.register_function(FN_NAME, apply)
redis.register_function(ACK_NAME, ack)
