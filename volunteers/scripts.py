"""The Lua scripts behind live positions (volunteers.positions): an operation that reads before
it writes, and the search, is one script, so one round trip and atomic.

KEYS[1..3] of every script that reads or writes positions are the walk, bike and car GEO sets
(`MODE_KEYS`); the other keys are named in each script's comment.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from geo import TravelMode
from volunteers.constants import POSITION_KEYS, POSITIONS_BY_MODE

# KEYS[1..3] of every script on positions: the walk, bike and car sets.
MODES = (TravelMode.WALK, TravelMode.BIKE, TravelMode.CAR)
MODE_KEYS = [POSITIONS_BY_MODE[mode.value] for mode in MODES]
if tuple(sorted(MODE_KEYS)) != tuple(sorted(POSITION_KEYS)):  # pragma: no cover
    raise RuntimeError("every travel mode needs its position set")

# The mode's set of a stored meta (compact JSON written by encode_meta); walk if unreadable.
SET_OF = """
local function set_of(meta)
  local mode = string.match(meta, '"travel_mode":"(%a+)"')
  if mode == 'bike' then return KEYS[2] elseif mode == 'car' then return KEYS[3] end
  return KEYS[1]
end
"""

# KEYS: walk, bike, car, meta, seen. ARGV: (id, lng, lat, now) quads. Returns 1/0 per quad.
UPDATE = (
    SET_OF
    + """
local out = {}
for i = 1, #ARGV, 4 do
  local id = ARGV[i]
  local meta = redis.call('HGET', KEYS[4], id)
  if meta then
    redis.call('GEOADD', set_of(meta), ARGV[i + 1], ARGV[i + 2], id)
    redis.call('ZADD', KEYS[5], ARGV[i + 3], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""
)

# KEYS: walk, bike, car, seen, meta, engaged. ARGV: lng, lat, walk/bike/car reach (m, 0: not
# searched), count per mode, min_seen, count per waypoint, then any waypoints as (lng, lat,
# walk/bike/car radius) each.
# Returns {stale, engaged, off_duty, {id, hash, k, ...}, {meta, ...}, cover}, each member once;
# cover says, per mode and then per waypoint and mode, within what distance every member was
# read (-1: every member who could count was), for the caller to check a plan against; hash is
# the member's GEO score (52-bit geohash, decoded and measured from the centre by the caller,
# geo.geohash.decode_measured: an integer costs Redis and Lua far less per member than
# WITHCOORD's nested pair of formatted numbers or WITHDIST's one); k is the 1-based index of the
# member's meta among the distinct metas (volunteers share metas: each is sent, decoded and
# judged once, not once per member).
# Per mode, the `count` members nearest the centre within the mode's reach. When the reach holds
# more than that, also each waypoint's `count per waypoint` members of that mode nearest the
# waypoint within its own radius for the mode (the planner's AEDs: who could fetch one in time,
# dispatch.planner.search_bounds), so a dense centre is read as far as the plan can use it, not
# to the reach.
# GEOSEARCH ... ASC COUNT n still measures and sorts every member of the geohash cells around
# the circle, so a dense centre is searched at a quarter of the reach first: when a smaller
# circle already holds n members they are the n nearest (the same answer), found in cells a
# fraction of the size. Otherwise the density seen sizes the next circle to hold about 1.5n,
# not the whole reach (at province scale the reach holds ~700 walkers at the median point, 2,600
# at p90). A waypoint's first circle is sized the same way from the density at the centre (the
# distance of its n-th nearest, asked WITHDIST only when there are waypoints: the circle that
# found them may be far larger). The per-member facts come in batched calls. Last-seen is read
# the other way round: the stale members of the whole seen set, few because the pruner removes
# them every few seconds, in one range read, instead of one score per member (each a formatted
# double, ~1.5 us: ~0.7 ms of a province search of 600 members). When as many are stale as there
# are members to judge (the pruner is not running), per member after all. The range read cannot
# tell a member that has no last-seen at all: every writer adds a position and its last-seen
# together (in one script or MULTI), and removes them together, so there is none.
SEARCH = """
local count = tonumber(ARGV[6])
local bounded = #ARGV >= 8
local per_waypoint = tonumber(ARGV[8] or 0)
local waypoints = bounded and per_waypoint > 0 and #ARGV > 8
local hits, seen = {}, {}
-- Where a bounded search read every member, per mode then per waypoint and mode: the distance
-- (m, rounded down) within which it did, or -1 where it read every member who could count.
local cover = {}
if bounded then
  for i = 1, 3 + 3 * math.floor((#ARGV - 8) / 5) do cover[i] = -1 end
end
-- The n members of set m nearest (lng, lat) within reach, from a circle of radius r: never more
-- than four circles, the last the reach. Members grow with the circle's area: the next circle
-- should hold about 1.5 n (one more search is rare), and a circle no larger than that is
-- searched in smaller cells. Nobody found: the whole reach.
local function nearest(m, lng, lat, reach, r, n, with_dist)
  local found
  for circle = 1, 4 do
    if circle == 4 then r = reach end
    if with_dist then
      found = redis.call('GEOSEARCH', KEYS[m], 'FROMLONLAT', lng, lat,
        'BYRADIUS', r, 'm', 'ASC', 'COUNT', n, 'WITHDIST', 'WITHHASH')
    else
      found = redis.call('GEOSEARCH', KEYS[m], 'FROMLONLAT', lng, lat,
        'BYRADIUS', r, 'm', 'ASC', 'COUNT', n, 'WITHHASH')
    end
    if #found >= n or r >= reach then break end
    if #found == 0 then r = reach
    else r = math.min(reach, r * math.sqrt(1.5 * n / #found)) end
  end
  return found
end
local function add(id, hash)
  if not seen[id] then
    seen[id] = true
    hits[#hits + 1] = {id, hash}
  end
end
for m = 1, 3 do
  local reach = tonumber(ARGV[2 + m])
  if reach > 0 then
    local found = nearest(m, ARGV[1], ARGV[2], reach, reach / 4, count, bounded)
    if bounded then
      local far = 0
      for _, hit in ipairs(found) do
        far = tonumber(hit[2])
        add(hit[1], hit[3])
      end
      if #found >= count then cover[m] = math.floor(far) end
      if waypoints and #found >= count then
        local start = math.max(far, 1) * math.sqrt(1.5 * per_waypoint / #found)
        for w = 9, #ARGV, 5 do
          local radius = tonumber(ARGV[w + 1 + m])
          if radius > 0 then
            local near = nearest(m, ARGV[w], ARGV[w + 1], radius, math.min(start, radius),
              per_waypoint, true)
            for _, hit in ipairs(near) do add(hit[1], hit[3]) end
            if #near >= per_waypoint then
              cover[3 + 3 * (w - 9) / 5 + m] = math.floor(tonumber(near[#near][2]))
            end
          end
        end
      end
    else
      for _, hit in ipairs(found) do hits[#hits + 1] = hit end
    end
  end
end
local min_seen = tonumber(ARGV[7])
local stale_ids = {}
if #hits > 0 then
  stale_ids = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[7], 'LIMIT', 0, #hits)
end
local by_range = #stale_ids < #hits
local is_stale = {}
if by_range then
  for _, id in ipairs(stale_ids) do is_stale[id] = true end
end
local fresh, busy, metas = {}, {}, {}
for first = 1, #hits, 1000 do
  local ids = {}
  for i = first, math.min(#hits, first + 999) do ids[#ids + 1] = hits[i][1] end
  local b = redis.call('HMGET', KEYS[6], unpack(ids))
  local m = redis.call('HMGET', KEYS[5], unpack(ids))
  local s
  if not by_range then s = redis.call('ZMSCORE', KEYS[4], unpack(ids)) end
  for j = 1, #ids do
    local i = first + j - 1
    if by_range then fresh[i] = not is_stale[ids[j]]
    else fresh[i] = s[j] and tonumber(s[j]) >= min_seen end
    busy[i], metas[i] = b[j], m[j]
  end
end
local stale, engaged, off = 0, 0, 0
local out, distinct, index = {}, {}, {}
for i, hit in ipairs(hits) do
  if not fresh[i] then
    stale = stale + 1
  elseif busy[i] then
    engaged = engaged + 1
  elseif not metas[i] then
    off = off + 1
  else
    local meta = metas[i]
    local k = index[meta]
    if not k then
      k = #distinct + 1
      distinct[k] = meta
      index[meta] = k
    end
    out[#out + 1] = hit[1]
    out[#out + 1] = hit[2]
    out[#out + 1] = k
  end
end
return {stale, engaged, off, out, distinct, cover}
"""

# KEYS: engaged. ARGV: volunteer id, incident id.
ENGAGE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return 1 end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 1 end
return 0
"""

# KEYS: engaged. ARGV: volunteer id, incident id.
RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

# KEYS: walk, bike, car, meta. ARGV: (id, meta json) pairs. Rewrites only volunteers who are
# on duty; a new travel mode moves the held position to that mode's set.
REFRESH = (
    SET_OF
    + """
local n = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local old = redis.call('HGET', KEYS[4], id)
  if old then
    local from, to = set_of(old), set_of(ARGV[i + 1])
    if from ~= to then
      local pos = redis.call('GEOPOS', from, id)[1]
      if pos then
        redis.call('GEOADD', to, pos[1], pos[2], id)
        redis.call('ZREM', from, id)
      end
    end
    redis.call('HSET', KEYS[4], id, ARGV[i + 1])
    n = n + 1
  end
end
return n
"""
)

# KEYS: walk, bike, car, seen. ARGV: cutoff (exclusive), batch size. Atomic, so an update
# racing the prune is never lost between reading the stale ids and removing them.
PRUNE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids > 0 then
  for k = 1, 4 do redis.call('ZREM', KEYS[k], unpack(ids)) end
end
return #ids
"""


@dataclass(frozen=True, slots=True)
class Scripts:
    update: AsyncScript
    search: AsyncScript
    engage: AsyncScript
    release: AsyncScript
    refresh: AsyncScript
    prune: AsyncScript


_REGISTERED: weakref.WeakKeyDictionary[Redis, Scripts] = weakref.WeakKeyDictionary()


def registered(redis: Redis) -> Scripts:
    """The Lua scripts, registered once per client (EVALSHA, loaded on first use)."""
    scripts = _REGISTERED.get(redis)
    if scripts is None:
        scripts = Scripts(
            update=redis.register_script(UPDATE),
            search=redis.register_script(SEARCH),
            engage=redis.register_script(ENGAGE),
            release=redis.register_script(RELEASE),
            refresh=redis.register_script(REFRESH),
            prune=redis.register_script(PRUNE),
        )
        _REGISTERED[redis] = scripts
    return scripts
