-- caresignal risk state: what the functions of both layouts share (lib/risk.lua, layout
-- 1; lib/risk_v2.lua, layout 2). lib/score.c writes it after the rules table R and
-- before the layout's own file.

local NONE, WATCH, INSPECT = 0, 1, 2
local LEVEL_NAME = {[0] = 'NONE', 'WATCH', 'INSPECT'}

local function fmt(x)
  return string.format('%.17g', x)
end

-- Small integers (kinds, counts, partitions, KEYS indexes, counters) both ways, by table
-- lookup instead of strtod / printf: the same values and digits as tonumber and fmt.
local SMALL, SMALL_STR = {}, {}
for i = 0, 255 do
  SMALL['' .. i] = i
  SMALL_STR[i] = '' .. i
end
local function num(x)
  return SMALL[x] or tonumber(x)
end

-- fmt(x) for the integers the state holds (times in ms, offsets, counters): the same
-- digits, without the cost of a floating-point conversion
local INT_EXACT = 2 ^ 53
local function ifmt(x)
  local small = SMALL_STR[x]
  if small then return small end
  if x % 1 == 0 and x < INT_EXACT and x > -INT_EXACT then
    return string.format('%d', x)
  end
  return fmt(x)
end

-- Level after applying an event, with hysteresis (docs/contract/risk-model.md). hold: an immediate
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
