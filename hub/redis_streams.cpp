// RedisBus's sequenced streams: the two Lua scripts (a sequenced publish, a history read),
// the keys they use and the parsing of their replies. The writer thread (redis_bus_writer.cpp)
// sends them pipelined with the plain XADDs; redis_bus.hpp says what they promise.
//
// Keys of a stream S under the bus's stream key K (S verbatim, binary-safe; at most 1024
// bytes, checked before anything is queued):
//   K:s:S  hash    epoch, offset (the last one given), bytes (payload bytes in history),
//                  oldest and oldest_ms (the history's oldest entry; 0 when it is empty),
//                  run (the run_id of the Redis process that wrote it)
//   K:h:S  stream  the history: entry id "<offset>-0", fields m (unix ms, Redis' clock), p
// The ids are the offsets, so "everything after offset N" is one XRANGE from id N+1. Two
// names give two keys ("K:s:" + S is one-to-one in S), and no key of one kind can be a key
// of the other kind or the bus stream K itself.
#include "hub/redis_bus_detail.hpp"

namespace hub::redis_bus_detail {

namespace {

// Shared by both scripts. The state hash keeps, besides epoch and offset, the history's
// payload bytes and its oldest entry (offset and unix ms; 0 when empty), so a publish that
// needs no trimming reads no entry: five Redis calls in all. trim() drops entries from the
// oldest end while the history is past a limit; every entry is dropped once (amortised O(1)
// per publish), and it reads the oldest two at a time to learn the next oldest.
constexpr std::string_view trim_function = R"lua(
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function entry_info(entry)
  local ms, length = 0, 0
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then ms = tonumber(fields[i + 1]) elseif fields[i] == 'p' then length = #fields[i + 1] end
  end
  return tonumber(string.match(entry[1], '^%d+')), ms, length
end
local function load_state(state)
  local got = redis.call('HMGET', state, 'epoch', 'offset', 'bytes', 'oldest', 'oldest_ms', 'run')
  return got[1], tonumber(got[2] or '0'),
         {bytes = tonumber(got[3] or '0'), oldest = tonumber(got[4] or '0'), oldest_ms = tonumber(got[5] or '0')},
         got[6] or ''
end
local function state_fields(s)
  return 'bytes', string.format('%d', s.bytes), 'oldest', string.format('%d', s.oldest),
         'oldest_ms', string.format('%d', s.oldest_ms)
end
local function trim(history, newest, s, max_entries, max_bytes, min_ms)
  local changed = false
  while s.oldest > 0 and (newest - s.oldest >= max_entries or s.bytes > max_bytes or s.oldest_ms < min_ms) do
    changed = true
    local two = redis.call('XRANGE', history, '-', '+', 'COUNT', 2)
    if not two[1] then
      s.bytes, s.oldest, s.oldest_ms = 0, 0, 0
      break
    end
    local _, _, length = entry_info(two[1])
    redis.call('XDEL', history, two[1][1])
    s.bytes = s.bytes - length
    if two[2] then
      local offset, ms = entry_info(two[2])
      s.oldest, s.oldest_ms = offset, ms
    else
      s.bytes, s.oldest, s.oldest_ms = 0, 0, 0
    end
  end
  return changed
end
)lua";

// KEYS: state hash, history stream, bus stream.
// ARGV: 1 epoch candidate, 2 max_entries, 3 max_bytes, 4 max_age_ms, 5 bus MAXLEN,
//       6 topic, 7 payload, 8 node id, 9 publish sequence number, 10 stream name,
//       11 Redis' run_id as this node's writer found it on connecting ("" if unknown),
//       12 the node's last sequence number Redis confirmed (the bus entry's c; see gap_seen_from).
// Returns {epoch, offset, unix_ms}. A state written under another run_id has lived through
// a restart or failover of Redis: it may be an older copy (a snapshot, a replica behind its
// master) whose offsets were handed out again after it, so its history starts a new epoch. The first write is an XADD that cannot fail for our own
// keys (or the DEL of a new epoch), so an error leaves nothing half done.
constexpr std::string_view publish_body = R"lua(
local state, history, bus = KEYS[1], KEYS[2], KEYS[3]
local epoch, last, s, run = load_state(state)
if not epoch or run ~= ARGV[11] then
  -- A new epoch: whatever history is left under this name belongs to a lost one, or to one
  -- that Redis may have lost the end of.
  epoch = ARGV[1]
  redis.call('DEL', history)
  last, s.bytes, s.oldest, s.oldest_ms = 0, 0, 0, 0
end
local offset = last + 1
local ms = now_ms()
local payload = ARGV[7]
local offset_text, ms_text = string.format('%d', offset), string.format('%d', ms)
redis.call('XADD', history, offset_text .. '-0', 'm', ms_text, 'p', payload)
s.bytes = s.bytes + #payload
if s.oldest == 0 then s.oldest, s.oldest_ms = offset, ms end
trim(history, offset, s, tonumber(ARGV[2]), tonumber(ARGV[3]), ms - tonumber(ARGV[4]))
redis.call('HSET', state, 'epoch', epoch, 'offset', offset_text, 'run', ARGV[11], state_fields(s))
redis.call('XADD', bus, 'MAXLEN', '~', ARGV[5], '*', 't', ARGV[6], 'p', payload, 'n', ARGV[8], 's', ARGV[9], 'c', ARGV[12],
           'q', ARGV[10], 'e', epoch, 'o', offset_text, 'm', ms_text)
return {epoch, offset, ms}
)lua";

// KEYS: state hash, history stream.
// ARGV: 1 first id wanted ("<after + 1>-0"), 2 max_messages, 3 max_entries, 4 max_bytes,
//       5 max_age_ms.
// Returns {epoch, last offset, oldest offset, then offset, unix_ms, payload per message};
// epoch "" when the stream has never had a message.
constexpr std::string_view read_body = R"lua(
local state, history = KEYS[1], KEYS[2]
local epoch, last, s = load_state(state)
if not epoch then return {'', 0, 0} end
if trim(history, last, s, tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms() - tonumber(ARGV[5])) then
  redis.call('HSET', state, state_fields(s))
end
local out = {epoch, last, s.oldest}
local wanted = tonumber(ARGV[2])
if wanted > 0 and s.oldest > 0 then
  for _, entry in ipairs(redis.call('XRANGE', history, ARGV[1], '+', 'COUNT', wanted)) do
    local offset, ms = entry_info(entry)
    local payload = ''
    for i = 1, #entry[2], 2 do
      if entry[2][i] == 'p' then payload = entry[2][i + 1] end
    end
    out[#out + 1] = offset
    out[#out + 1] = ms
    out[#out + 1] = payload
  end
end
return out
)lua";

const std::string& script_text(std::string_view body) {
    static const std::string publish = std::string(trim_function) + std::string(publish_body);
    static const std::string read = std::string(trim_function) + std::string(read_body);
    return body == publish_body ? publish : read;
}

/// An integer reply, or a string of digits (Lua numbers come back as integers).
bool reply_number(const redisReply* reply, std::int64_t& out) {
    if (!reply) return false;
    if (reply->type == REDIS_REPLY_INTEGER) {
        out = reply->integer;
        return true;
    }
    return is_text(reply) && parse_number(reply_text(reply), out);
}

}  // namespace

const std::string& publish_script() {
    return script_text(publish_body);
}

const std::string& read_script() {
    return script_text(read_body);
}

std::string stream_state_key(std::string_view bus_key, std::string_view stream) {
    std::string key;
    key.reserve(bus_key.size() + 3 + stream.size());
    key.append(bus_key).append(":s:").append(stream);
    return key;
}

std::string stream_history_key(std::string_view bus_key, std::string_view stream) {
    std::string key;
    key.reserve(bus_key.size() + 3 + stream.size());
    key.append(bus_key).append(":h:").append(stream);
    return key;
}

bool parse_publish_reply(const redisReply* reply, SequencedMessage& accepted) {
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || !is_text(reply->element[0])) return false;
    std::int64_t offset = 0;
    std::int64_t unix_ms = 0;
    if (!reply_number(reply->element[1], offset) || offset <= 0 || !reply_number(reply->element[2], unix_ms)) return false;
    accepted.epoch = std::string(reply_text(reply->element[0]));
    accepted.offset = static_cast<std::uint64_t>(offset);
    accepted.unix_ms = unix_ms;
    return true;
}

HistoryRead parse_read_reply(const redisReply* reply, std::string_view stream) {
    HistoryRead read;
    std::int64_t last = 0;
    std::int64_t oldest = 0;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || (reply->elements - 3) % 3 != 0 ||
        !is_text(reply->element[0]) || !reply_number(reply->element[1], last) || !reply_number(reply->element[2], oldest) ||
        last < 0 || oldest < 0) {
        read.error = "redis: unexpected reply to the history read";
        return read;
    }
    read.ok = true;
    read.epoch = std::string(reply_text(reply->element[0]));
    read.last_offset = static_cast<std::uint64_t>(last);
    read.oldest_offset = static_cast<std::uint64_t>(oldest);
    read.messages.reserve((reply->elements - 3) / 3);
    for (std::size_t i = 3; i + 2 < reply->elements; i += 3) {
        std::int64_t offset = 0;
        std::int64_t unix_ms = 0;
        if (!reply_number(reply->element[i], offset) || offset <= 0 || !reply_number(reply->element[i + 1], unix_ms) ||
            !is_text(reply->element[i + 2])) {
            return HistoryRead{false, "redis: unexpected entry in the history read", {}, 0, 0, {}};
        }
        read.messages.push_back(SequencedMessage{std::string(stream), read.epoch, static_cast<std::uint64_t>(offset), unix_ms,
                                                 std::string(reply_text(reply->element[i + 2]))});
    }
    return read;
}

}  // namespace hub::redis_bus_detail
