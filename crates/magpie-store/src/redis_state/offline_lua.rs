//! The Lua scripts of the segmented offline index (`offline.rs`).
//!
//! Every script is called with `KEYS[1]` the queue's index
//! (`P:offix:{uid}:conv`, bucket id → the segment's deadline) and
//! `KEYS[2]` its unsegmented key from before buckets (`P:offline:{uid}:conv`),
//! `ARGV[1]` the segments' key base (`P:offb:{uid}:conv:`, a bucket id
//! appended) and `ARGV[2]` the caller's clock (epoch ms). The segment keys
//! a script derives from the index carry the same `{uid}` hash tag as both
//! declared keys, so they are in the same slot: valid on Redis Cluster
//! (Redis checks a script's keys by slot, not by declaration).

/// Adds entries (quadruples from `ARGV[4]` on: bucket id, the segment's
/// deadline, seq, member `seq:payload`), each after removing its seq from
/// every segment and the old key (a seq lives in one segment only: the
/// member embeds the seq, so ZADD alone would keep two payloads). Then each
/// segment written keeps its newest `ARGV[3]` and expires at its deadline,
/// the index drops what expired and what emptied and lives as long as its
/// last segment, and the old key is held to the cap too (it is never
/// written again: its own 30-day expiry drains it).
pub(super) const OFFLINE_ADD: &str = r"
local idx, legacy, base = KEYS[1], KEYS[2], ARGV[1]
local cap = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[2])
local live = redis.call('ZRANGE', idx, 0, -1)
local seen, touched = {}, {}
for _, b in ipairs(live) do seen[b] = true end
for i = 4, #ARGV, 4 do
  local b, seq = ARGV[i], ARGV[i + 2]
  redis.call('ZREMRANGEBYSCORE', legacy, seq, seq)
  for _, o in ipairs(live) do
    redis.call('ZREMRANGEBYSCORE', base .. o, seq, seq)
  end
  if not seen[b] then
    seen[b] = true
    live[#live + 1] = b
  end
  redis.call('ZADD', base .. b, seq, ARGV[i + 3])
  touched[b] = ARGV[i + 1]
end
for _, b in ipairs(live) do
  local key = base .. b
  if touched[b] then
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
    redis.call('PEXPIREAT', key, touched[b])
    redis.call('ZADD', idx, touched[b], b)
  elseif redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', idx, b)
  end
end
local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', idx, last[2]) end
redis.call('ZREMRANGEBYRANK', legacy, 0, -(cap + 1))
return 1
";

/// Reads every live segment and the old key, read-only. `ARGV[3]` is
/// `newest` (`ARGV[4]` = n: the newest n members of each), `after`
/// (`ARGV[4]` = seq, `ARGV[5]` = n: the first n members above seq of each)
/// or `sizes` (per segment: bucket id, deadline, ZCARD; the old key as
/// id `''`, deadline `-1`). The caller merges (`offline::merge_*`).
pub(super) const OFFLINE_READ: &str = r"
local idx, legacy, base, mode = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
local live = redis.call('ZRANGEBYSCORE', idx, '(' .. ARGV[2], '+inf', 'WITHSCORES')
local segs = {}
for i = 1, #live, 2 do
  segs[#segs + 1] = {base .. live[i], live[i], live[i + 1]}
end
segs[#segs + 1] = {legacy, '', '-1'}
local out = {}
for _, s in ipairs(segs) do
  local got
  if mode == 'newest' then
    got = redis.call('ZREVRANGE', s[1], 0, tonumber(ARGV[4]) - 1)
  elseif mode == 'after' then
    got = redis.call('ZRANGEBYSCORE', s[1], '(' .. ARGV[4], '+inf', 'LIMIT', 0, ARGV[5])
  else
    got = {s[2], s[3], tostring(redis.call('ZCARD', s[1]))}
  end
  for _, m in ipairs(got) do out[#out + 1] = m end
end
return out
";

/// Removes entries from every live segment and the old key: `ARGV[3]` is
/// `trim` (everything up to seq `ARGV[4]`) or `remove` (the seqs from
/// `ARGV[4]` on). Emptied segments leave the index. Returns how many
/// entries went (exact: a seq is in one segment only).
pub(super) const OFFLINE_CUT: &str = r"
local idx, legacy, base, mode = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[2])
local n = 0
local function cut(key)
  if mode == 'trim' then
    n = n + redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[4])
  else
    for i = 4, #ARGV do
      n = n + redis.call('ZREMRANGEBYSCORE', key, ARGV[i], ARGV[i])
    end
  end
end
cut(legacy)
for _, b in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  cut(base .. b)
  if redis.call('EXISTS', base .. b) == 0 then redis.call('ZREM', idx, b) end
end
return n
";
