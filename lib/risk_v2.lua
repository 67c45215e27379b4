-- caresignal risk state, layout 2: the one Redis function that applies a subject's
-- events (docs/contract/risk-model.md) to its state (docs/contract/redis-layout.md).
-- The C side (lib/score.c) prepends "#!lua name=...", a table R of the rules and
-- lib/risk_common.lua (what both layouts share), and
-- registers the functions as FN_NAME and ACK_NAME.
--
-- FCALL <fn> 1 <state> <subject kind index> <n> <events>: the n events packed one after
--       another (EV below, little-endian): the de-duplication digest (8 bytes: SHA-256
--       of "YYYY-MM" NUL event_key, cut to 64 bits), its month (year * 12 + month - 1 of
--       occurred_at, UTC) and that month's end (ms), signal, severity, area, flags
--       (1 immediate, 2 assurance), occurred_at, weight, partition, offset, the
--       event_key's "SOURCE:org:" prefix and the partner's ref (each [len B][bytes]).
-- Reply (as layout 1's): score, as_of, level, applied, partner duplicates, redeliveries,
--       offset regressions (unseen events applied at or below the subject's last offset
--       on their partition), n new alerts, n re-emitted alerts, then the alerts as JSON.
--
-- The whole state of a subject is ONE string, read with one GET and written with one
-- SET (or, when only counters moved, one SETRANGE of the header) per call. Cost
-- (bench/README.md has the profile): Redis's Lua hashes every byte of every string it
-- creates, and each C function call and redis.call has a fixed price, so the hot path
-- creates few strings, decodes nothing it does not need, and walks no more records
-- than it must. The value, little-endian (struct formats):
--   header    HDR below: version, level, flags (1 immediate_at set, 2 position set),
--             score, the four area scores, as_of, level_since, immediate_at, prune_at
--             (when as_of reaches it the oldest month of digests is forgotten),
--             assurance, events_total, duplicates, last_partition, last_offset, then
--             the sections' sizes: prefixes (count, bytes), list (records, bytes),
--             months, digests
--   prefixes  NUL prefix NUL (index + 1) each: the "SOURCE:org:" parts of event keys,
--             so that a record holds one byte instead of them
--   months    [month H][count I3] each, oldest first: the de-duplication record's months
--   digests   8 bytes each, grouped by month in the months' order
--   list      the 90-day event list, newest first, in layout 1's sorted-set order
--             ((occurred_at, "<event_key> <signal> <severity>" bytewise), descending):
--             [len B][occurred_at i6][signal B][severity B][prefix B][ref][len B],
--             len = 11 + #ref, so that it can be walked from either end
--   alerts    (to the end; empty: none) [has last_alert B][last_alert][n pending H]
--             [pending...]; an alert is [kind B][level B][previous B][reason B]
--             [score d][as_of i6][4 area d][prefix B][ref len B][ref][n recent B] then
--             per recent event [occurred_at i6][signal B][severity B][prefix B]
--             [ref len B][ref]
-- A month of digests is forgotten once as_of - seen_ttl has passed its end: event time,
-- not the wall clock, so a replay forgets exactly as the live run did, and nothing
-- within the 396-day horizon that TIME_RANGE enforces is forgotten.
--
-- Alerts a call produces are kept pending until the scorer has delivered them and
-- calls ACK_NAME; a redelivered event re-emits the pending alert it triggered (and
-- last_alert, the subject's latest), so an alert lost in a crash is published again
-- with the same id. Once acknowledged nothing depends on how events were batched.
-- Numbers cross the boundary as strings: "%.17g" round-trips a double exactly.

local KIND_NAME = {[0] = 'RAISED', 'CLEARED'}
local REASON_NAME = {[0] = 'THRESHOLD', 'IMMEDIATE'}
local KIND_CODE = {RAISED = 0, CLEARED = 1}
local LEVEL_CODE = {NONE = 0, WATCH = 1, INSPECT = 2}
local REASON_CODE = {THRESHOLD = 0, IMMEDIATE = 1}
local VERSION = 2
local HDR = '<BBBdddddi6i6i6i6I4I4I4i4i6BHHHHI4'
local EV = '<c8Hi6BBBBi6di4i8Bc0Bc0'
local ALERT_HEAD = '<BBBBdi6ddddBB'
local NEVER = 2 ^ 46
local TTL = R.seen_ttl * 1000
local WINDOW, HOLD, HALF_LIFE = R.window, R.hold, R.half_life
local EVENTS_MAX, RECENT_MAX = R.events_max, R.recent_max
-- bound at the first call: the libraries are not reachable while the library loads
local HDR_SIZE, byte, char, sub, find, pack, unpack, tunpack, floor
local function bind()
  HDR_SIZE = struct.size(HDR)
  byte, char, sub, find = string.byte, string.char, string.sub, string.find
  pack, unpack, tunpack, floor = struct.pack, struct.unpack, _G.unpack, math.floor
end


-- the first ms of month index mi (year * 12 + month - 1), UTC: days from the civil date
local function month_start(mi)
  local y, m = floor(mi / 12), mi % 12 + 1
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = floor((153 * mp + 2) / 5)
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return (era * 146097 + doe - 719468) * 86400000
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

-- ------------------------------------------------------------------ the value

-- The state at key (nil: none; a string: what is wrong), sections as strings except
-- the alerts, which stay a range of the value until needed.
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
  local st = {v = v}
  local _, pos
  _, st.level, st.flags, st.s, st.a1, st.a2, st.a3, st.a4, st.as_of, st.level_since,
    st.imm_at, st.prune_at, st.assurance, st.total, st.dups, st.last_p, st.last_o,
    st.npre, st.np, st.nlist, st.nl, st.nm, st.nd, pos = unpack(HDR, v)
  local dir_at = pos + st.np
  local dig_at = dir_at + 5 * st.nm
  local list_at = dig_at + 8 * st.nd
  st.alerts_at = list_at + st.nl
  if st.alerts_at > #v + 1 then return 'the state value is truncated' end
  st.pre = sub(v, pos, dir_at - 1)
  st.dir = sub(v, dir_at, dig_at - 1)
  st.dig = sub(v, dig_at, list_at - 1)
  st.list = sub(v, list_at, st.alerts_at - 1)
  if st.flags % 2 == 0 then st.imm_at = nil end
  if st.flags < 2 then st.last_p, st.last_o = nil, nil end
  return st
end

local function new_state()
  return {level = NONE, s = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, level_since = 0,
    prune_at = NEVER, assurance = 0, total = 0, dups = 0, npre = 0, nlist = 0, nm = 0,
    pre = '', dir = '', dig = '', list = '', alerts_at = 1, v = ''}
end

local function header(st)
  local flags = (st.imm_at and 1 or 0) + (st.last_p and 2 or 0)
  return pack(HDR, VERSION, st.level, flags, st.s, st.a1, st.a2, st.a3, st.a4, st.as_of,
    st.level_since, st.imm_at or 0, st.prune_at, st.assurance, st.total, st.dups,
    st.last_p or 0, st.last_o or 0, st.npre, #st.pre, st.nlist, #st.list, st.nm,
    #st.dig / 8)
end

-- the alerts section as it stands
local function alerts_of(st)
  if st.alerts then return st.alerts end
  return sub(st.v, st.alerts_at)
end

-- ------------------------------------------------------------------ key prefixes

-- index -> prefix, decoded once per call when needed
local function prefix_table(st)
  if st.ptab then return st.ptab end
  local t = {}
  for p, i in string.gmatch(st.pre, '%z([^%z]*)%z(.)') do t[byte(i) - 1] = p end
  st.ptab = t
  return t
end

-- alerts section codec
local function decode_alert(st, raw, p)
  local ptab = prefix_table(st)
  local al = {}
  local k, l, pl, r, s, as_of, a1, a2, a3, a4, pidx, len
  k, l, pl, r, s, as_of, a1, a2, a3, a4, pidx, len, p = unpack(ALERT_HEAD, raw, p)
  al.kind, al.level, al.previous_level, al.reason = KIND_NAME[k], LEVEL_NAME[l],
    LEVEL_NAME[pl], REASON_NAME[r]
  al.score, al.as_of = s, as_of
  al.area_scores = {a1, a2, a3, a4}
  al.pidx, al.ref = pidx, sub(raw, p, p + len - 1)
  al.triggered_by = ptab[pidx] .. al.ref
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
  local raw = alerts_of(st)
  if raw == '' then return nil, {} end
  local last, p = nil, 2
  if byte(raw, 1) == 1 then last, p = decode_alert(st, raw, 2) end
  local n
  n, p = unpack('<H', raw, p)
  local pending = {}
  for i = 1, n do pending[i], p = decode_alert(st, raw, p) end
  return last, pending
end

local function encode_alerts(last, pending)
  if not last and #pending == 0 then return '' end
  local out = {last and '\1' or '\0'}
  if last then encode_alert(last, out) end
  out[#out + 1] = pack('<H', #pending)
  for _, al in ipairs(pending) do encode_alert(al, out) end
  return table.concat(out)
end

-- The alert as the reply carries it (layout 1's JSON: numbers as strings)
local function alert_json(st, al)
  local ptab = prefix_table(st)
  local recent = {}
  for i, e in ipairs(al.recent) do
    recent[i] = {ptab[e[4]] .. e[5], SMALL_STR[e[2]], SMALL_STR[e[3]], ifmt(e[1])}
  end
  local areas = {}
  for i = 1, 4 do areas[i] = fmt(al.area_scores[i]) end
  return cjson.encode({kind = al.kind, level = al.level,
    previous_level = al.previous_level, score = fmt(al.score), as_of = ifmt(al.as_of),
    triggered_by = al.triggered_by, reason = al.reason, recent = recent,
    area_scores = areas})
end


-- The table is full (255): keeps only the prefixes a record or an alert (of the lists
-- given) refers to, renumbered.
local function compact_prefixes(st, ...)
  local old = prefix_table(st)
  local keep, map = {}, {}
  local function use(i)
    if not map[i] then
      keep[#keep + 1] = '\0' .. old[i] .. '\0' .. char(#keep + 1)
      map[i] = #keep - 1
    end
    return map[i]
  end
  local out, p, list = {}, 1, st.list
  while p <= #list do
    local len = byte(list, p)
    out[#out + 1] = sub(list, p, p + 8) .. char(use(byte(list, p + 9))) ..
      sub(list, p + 10, p + len - 1)
    p = p + len
  end
  st.list = table.concat(out)
  for _, alerts in ipairs({...}) do
    for _, al in pairs(alerts) do
      al.pidx = use(al.pidx)
      for _, e in ipairs(al.recent) do e[4] = use(e[4]) end
    end
  end
  st.pre = table.concat(keep)
  st.npre = #keep
  st.ptab = nil
end

-- ------------------------------------------------------------------ the list

-- Does a record start exactly at \p at? (walking from the front)
local function record_at(list, at)
  local p = 1
  while p < at do p = p + byte(list, p) end
  return p == at
end

-- The list, newest first, with \p rec (occurred_at t, member prefix..ref sig sev) in
-- its place
local function list_insert(st, t, prefix, ref, sig, sev, rec)
  local list, p, n = st.list, 1, #st.list
  local m
  while p <= n do
    local len, rt = unpack('<Bi6', list, p)
    if rt < t then break end
    if rt == t then
      local ptab = prefix_table(st)
      m = m or prefix .. ref .. ' ' .. SMALL_STR[sig] .. ' ' .. SMALL_STR[sev]
      local rm = ptab[byte(list, p + 9)] .. sub(list, p + 10, p + len - 2) .. ' ' ..
        SMALL_STR[byte(list, p + 7)] .. ' ' .. SMALL_STR[byte(list, p + 8)]
      if bytes_less(rm, m) then break end
    end
    p = p + len
  end
  if p == 1 then
    st.list = rec .. list
  elseif p > n then
    st.list = list .. rec
  else
    st.list = sub(list, 1, p - 1) .. rec .. sub(list, p)
  end
  st.nlist = st.nlist + 1
end

-- Trims the list as layout 1 did after every event: records older than cutoff go, then
-- all but the newest EVENTS_MAX
local function list_trim(st, cutoff)
  local list = st.list
  local e = #list
  local n = st.nlist
  while e > 0 do
    local start = e - byte(list, e) + 1
    if n <= EVENTS_MAX and unpack('<i6', list, start + 1) >= cutoff then break end
    e = start - 1
    n = n - 1
  end
  if n ~= st.nlist then
    st.list = sub(list, 1, e)
    st.nlist = n
  end
end

-- The first RECENT_MAX records, as an alert's recent list
local function list_recent(st)
  local out, list, p = {}, st.list, 1
  while p <= #list and #out < RECENT_MAX do
    local len, t, sig, sev, pi = unpack('<Bi6BBB', list, p)
    out[#out + 1] = {t, sig, sev, pi, sub(list, p + 10, p + len - 2)}
    p = p + len
  end
  return out
end

-- ------------------------------------------------------------------ de-duplication

local DIR_FMT = {}
local function dir_fmt(n)
  local f = DIR_FMT[n]
  if not f then
    f = '<' .. string.rep('HI3', n)
    DIR_FMT[n] = f
  end
  return f
end

-- Is the digest in the record? (a match must sit on a digest boundary)
local function seen(dig, d)
  local at = find(dig, d, 1, true)
  while at do
    if at % 8 == 1 then return true end
    at = find(dig, d, at + 1, true)
  end
  return false
end

local function seen_add(st, month, month_end, d)
  local nm = st.nm
  local last, c
  if nm > 0 then last, c = unpack('<HI3', st.dir, 5 * nm - 4) end
  if last == month then
    -- the common case: the latest month
    st.dir = sub(st.dir, 1, 5 * nm - 5) .. pack('<HI3', month, c + 1)
    st.dig = st.dig .. d
    return
  end
  if nm == 0 or last < month then
    st.dir = st.dir .. pack('<HI3', month, 1)
    st.dig = st.dig .. d
    st.nm = nm + 1
    if nm == 0 then st.prune_at = month_end + TTL end
    return
  end
  local e = {unpack(dir_fmt(nm), st.dir)}
  local off, i = 0, 1
  while i <= nm and e[2 * i - 1] <= month do
    off = off + e[2 * i]
    i = i + 1
  end
  if i > 1 and e[2 * i - 3] == month then
    e[2 * i - 2] = e[2 * i - 2] + 1
  else
    table.insert(e, 2 * i - 1, 1)
    table.insert(e, 2 * i - 1, month)
    nm = nm + 1
    st.nm = nm
    if i == 1 then st.prune_at = month_end + TTL end
  end
  st.dir = pack(dir_fmt(nm), tunpack(e, 1, 2 * nm))
  st.dig = sub(st.dig, 1, off * 8) .. d .. sub(st.dig, off * 8 + 1)
end

-- Forgets the months that ended before as_of - seen_ttl
local function seen_prune(st)
  if st.as_of == nil or st.as_of < st.prune_at then return end
  local nm = st.nm
  local e = {unpack(dir_fmt(nm), st.dir)}
  local k, drop = 0, 0
  while k < nm and month_start(e[2 * k + 1] + 1) + TTL <= st.as_of do
    drop = drop + e[2 * k + 2]
    k = k + 1
  end
  st.nm = nm - k
  st.dir = sub(st.dir, 5 * k + 1)
  st.dig = sub(st.dig, drop * 8 + 1)
  st.prune_at = st.nm > 0 and month_start(e[2 * k + 1] + 1) + TTL or NEVER
end

-- ------------------------------------------------------------------ apply

local function apply(keys, args)
  if not byte then bind() end
  local key = keys[1]
  local kind = num(args[1])
  local n = num(args[2])
  local blob = args[3]
  local L = R.levels[kind]
  local st = load(key)
  if type(st) == 'string' then return fail(st) end
  local fresh = st == nil
  st = st or new_state()
  local s, as_of, level, imm_at = st.s, st.as_of, st.level, st.imm_at
  local a1, a2, a3, a4 = st.a1, st.a2, st.a3, st.a4
  if fresh then as_of = nil end
  local last_p, last_o = st.last_p, st.last_o
  local counters_only, rewrite = false, false

  local applied, skipped_dup, skipped_redelivery, regressions = 0, 0, 0, 0
  -- decoded only when needed: most calls raise nothing and re-emit nothing
  local alerts, reemit, reemitted, candidates = nil, nil, nil, nil
  local last0, pending0 = nil, nil

  -- the index of a key prefix in the subject's table, added if new (nil: the table is
  -- full of prefixes still referred to)
  local function prefix_of(prefix)
    local probe = '\0' .. prefix .. '\0'
    local at = find(st.pre, probe, 1, true)
    if at then return byte(st.pre, at + #probe) - 1 end
    if st.npre == 255 then
      if not last0 then last0, pending0 = decode_alerts(st) end
      compact_prefixes(st, {last0}, pending0, alerts or {})
      st.alerts = encode_alerts(last0, pending0)
      if st.npre == 255 then return nil end
    end
    st.pre = st.pre .. probe .. char(st.npre + 1)
    st.npre = st.npre + 1
    if st.ptab then st.ptab[st.npre - 1] = prefix end
    return st.npre - 1
  end

  local pos = 1
  for _ = 1, n do
    local d, month, month_end, sig, sev, area, fl, t, w, p, o, prefix, ref
    d, month, month_end, sig, sev, area, fl, t, w, p, o, prefix, ref, pos =
      unpack(EV, blob, pos)
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
          if not last0 then last0, pending0 = decode_alerts(st) end
          candidates = {}
          for _, al in ipairs(pending0) do candidates[#candidates + 1] = al end
          if last0 then candidates[#candidates + 1] = last0 end
          reemit, reemitted = {}, {}
        end
        local ekey = prefix .. ref
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
        counters_only = true
      end
    else
      rewrite = true
      if behind then regressions = regressions + 1 end
      seen_add(st, month, month_end, d)
      if as_of == nil then
        s = w
        if area == 0 then a1 = w elseif area == 1 then a2 = w
        elseif area == 2 then a3 = w else a4 = w end
        as_of = t
      elseif t >= as_of then
        local f = 2 ^ (-(t - as_of) / HALF_LIFE)
        s = s * f + w
        a1, a2, a3, a4 = a1 * f, a2 * f, a3 * f, a4 * f
        if area == 0 then a1 = a1 + w elseif area == 1 then a2 = a2 + w
        elseif area == 2 then a3 = a3 + w else a4 = a4 + w end
        as_of = t
      else
        local dw = w * 2 ^ (-(as_of - t) / HALF_LIFE)
        s = s + dw
        if area == 0 then a1 = a1 + dw elseif area == 1 then a2 = a2 + dw
        elseif area == 2 then a3 = a3 + dw else a4 = a4 + dw end
      end
      if fl >= 2 then st.assurance = st.assurance + 1 end
      st.total = st.total + 1
      applied = applied + 1
      last_p, last_o = p, o

      local cutoff = as_of - WINDOW
      local pi
      if t >= cutoff then
        pi = prefix_of(prefix)
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
        list_insert(st, t, prefix, ref, sig, sev,
          char(len) .. pack('<i6BBB', t, sig, sev, pi) .. ref .. char(len))
      end
      list_trim(st, cutoff)

      local new_level, reason = level, 'THRESHOLD'
      if fl % 2 == 1 and as_of - t < HOLD then
        -- "significant risk of harm": INSPECT at once, held for HOLD from the latest
        -- immediate event
        if imm_at == nil or t > imm_at then imm_at = t end
        if level < INSPECT then new_level, reason = INSPECT, 'IMMEDIATE' end
      else
        local hold = imm_at ~= nil and as_of - imm_at < HOLD
        new_level = threshold_level(L, level, s, hold)
      end
      if new_level ~= level then
        -- the alert's recent events are the list as it stands after this event
        pi = pi or prefix_of(prefix)
        if not pi then return fail('more than 255 partner organisations in the 90-day list') end
        local al = {
          kind = (new_level > level) and 'RAISED' or 'CLEARED',
          level = LEVEL_NAME[new_level], previous_level = LEVEL_NAME[level],
          score = s, as_of = as_of, triggered_by = prefix .. ref, reason = reason,
          recent = list_recent(st), area_scores = {a1, a2, a3, a4}, pidx = pi, ref = ref
        }
        alerts = alerts or {}
        alerts[#alerts + 1] = al
        level = new_level
        st.level_since = as_of
      end
    end
  end

  if rewrite or counters_only then
    st.s, st.as_of, st.level, st.imm_at = s, as_of, level, imm_at
    st.a1, st.a2, st.a3, st.a4 = a1, a2, a3, a4
    st.last_p, st.last_o = last_p, last_o
    if rewrite or st.alerts then
      seen_prune(st)
      if alerts then
        if not last0 then last0, pending0 = decode_alerts(st) end
        local pending = {}
        for _, al in ipairs(pending0) do pending[#pending + 1] = al end
        for _, al in ipairs(alerts) do pending[#pending + 1] = al end
        st.alerts = encode_alerts(alerts[#alerts], pending)
      end
      redis.call('SET', key, header(st) .. st.pre .. st.dir .. st.dig .. st.list ..
        alerts_of(st))
    else
      -- partner duplicates only: the counters and the position, in place
      redis.call('SETRANGE', key, 0, header(st))
    end
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
  if not st or st.alerts_at > #st.v then return 0 end
  local last, pending = decode_alerts(st)
  if #pending == 0 then return 0 end
  local delivered = {}
  for i = 1, #args do delivered[args[i]] = true end
  local keep = {}
  for _, al in ipairs(pending) do
    if not delivered[alert_identity(al)] then keep[#keep + 1] = al end
  end
  if #keep ~= #pending then
    redis.call('SET', keys[1], sub(st.v, 1, st.alerts_at - 1) .. encode_alerts(last, keep))
  end
  return #pending - #keep
end

-- FCALL <cas> 1 <state> <expected> <value>: state.engine=scorer on a Redis Cluster, where a
-- WATCH/MULTI transaction cannot hold keys of many slots (lib/engine.c). Writes <value>
-- only if the key still holds exactly what it was computed from: <expected> is the value
-- read, "" for no key (a layout 2 value is never empty). Lua interns strings, so the
-- comparison costs one memcmp when the key read here creates the same string. 1:
-- written; 0: the value moved (read it again). A key of another type fails (WRONGTYPE),
-- as apply does.
local function cas(keys, args)
  local cur = redis.call('GET', keys[1])
  if (cur or '') ~= args[1] then return 0 end
  redis.call('SET', keys[1], args[2])
  return 1
end

redis.register_function(FN_NAME, apply)
redis.register_function(ACK_NAME, ack)
redis.register_function(CAS_NAME, cas)
