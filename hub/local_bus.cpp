// LocalBus: the bus of a hub without Redis (hub/bus.hpp says what it promises). Locking:
// mutex_ is the bus's order and is held while the handler runs; history_mutex_ guards the
// histories and is taken inside mutex_ only for the bookkeeping, so read_history() may be
// called from the handler.
//
// export_histories() format (version 1), little-endian:
//   "WSHH" u8 version  u32 stream count
//   per stream:  u16 name length, name | u8 epoch length, epoch | u64 last offset |
//                u32 message count | per message: u64 offset, i64 unix_ms, u64 length, payload
//   u64 FNV-1a of every byte before it
// import checks the checksum, every length against what is left, names, epochs and that
// offsets grow and stay within the last offset; anything else refuses the whole state.
#include "hub/bus.hpp"
#include "hub/bus_sequenced_detail.hpp"

#include <algorithm>

namespace hub {

using namespace bus_sequenced_detail;

namespace {

constexpr std::string_view export_magic = "WSHH";
constexpr std::uint8_t export_version = 1;
/// The smallest encoded message: offset, unix_ms, payload length.
constexpr std::size_t min_message_bytes = 8 + 8 + 8;
/// Age sweeps over every stream come at most this often (publishes cut their own stream).
constexpr std::int64_t sweep_interval_ms = 1000;

std::int64_t now_unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::uint64_t fnv1a(std::string_view bytes) {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (char c : bytes) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ull;
    }
    return hash;
}

}  // namespace

void LocalBus::start(Handler handler) {
    std::lock_guard lock(mutex_);
    handler_ = std::move(handler);
}

void LocalBus::publish(std::string topic, std::string payload, Done done) {
    {
        std::lock_guard lock(mutex_);  // one message at a time: the bus has one order
        if (handler_) handler_(topic, payload);
        ++status_.published;
        ++status_.received;
    }
    if (done) done(true, {});
}

void LocalBus::stop() {
    std::lock_guard lock(mutex_);
    handler_ = nullptr;
}

BusStatus LocalBus::status() const {
    std::lock_guard lock(mutex_);
    BusStatus status = status_;
    status.kind = "local";
    return status;
}

void LocalBus::set_history_limits(HistoryLimits limits) {
    std::lock_guard lock(history_mutex_);
    limits_ = limits;
}

void LocalBus::cut_locked(StreamHistory& history, std::int64_t now_ms) const {
    const std::int64_t oldest_kept_ms = now_ms - static_cast<std::int64_t>(limits_.max_age.count());
    while (!history.messages.empty()) {
        const Retained& front = history.messages.front();
        const bool too_many = history.messages.size() > limits_.max_entries;
        const bool too_big = history.bytes > limits_.max_bytes;
        const bool too_old = front.unix_ms < oldest_kept_ms;
        if (!too_many && !too_big && !too_old) break;
        history.bytes -= front.payload.size();
        history.messages.pop_front();
    }
}

void LocalBus::sweep_by_age_locked(std::int64_t now_ms) {
    if (now_ms - last_sweep_ms_ < sweep_interval_ms && now_ms >= last_sweep_ms_) return;
    last_sweep_ms_ = now_ms;
    for (auto& [name, history] : streams_) cut_locked(history, now_ms);
}

void LocalBus::publish_sequenced(std::string topic, std::string stream, std::string payload, SequencedDone done) {
    if (!valid_stream_name(stream)) {
        if (done) done(false, "invalid stream name (1 to 1024 bytes, no NUL)", SequencedMessage{});
        return;
    }
    SequencedMessage accepted;
    {
        std::lock_guard lock(mutex_);  // the bus's order, as for publish()
        std::string envelope;
        {
            std::lock_guard history_lock(history_mutex_);
            const std::int64_t now_ms = now_unix_ms();
            auto it = streams_.find(stream);
            if (it == streams_.end()) {
                it = streams_.emplace(stream, StreamHistory{}).first;
                it->second.epoch = random_epoch();
            }
            StreamHistory& history = it->second;
            accepted.stream = std::move(stream);
            accepted.epoch = history.epoch;
            accepted.offset = ++history.last_offset;
            accepted.unix_ms = now_ms;
            accepted.payload = std::move(payload);
            envelope = encode_sequenced(accepted);
            history.bytes += accepted.payload.size();
            history.messages.push_back(Retained{accepted.offset, now_ms, std::move(accepted.payload)});
            accepted.payload.clear();
            cut_locked(history, now_ms);
            sweep_by_age_locked(now_ms);
        }
        if (handler_) handler_(topic, envelope);
        ++status_.published;
        ++status_.received;
    }
    if (done) done(true, {}, accepted);
}

void LocalBus::read_history(std::string stream, std::uint64_t after, std::size_t max_messages, HistoryDone done) {
    HistoryRead read;
    read.ok = true;
    {
        std::lock_guard lock(history_mutex_);
        auto it = streams_.find(stream);
        if (it != streams_.end()) {
            StreamHistory& history = it->second;
            cut_locked(history, now_unix_ms());
            read.epoch = history.epoch;
            read.last_offset = history.last_offset;
            if (!history.messages.empty()) {
                read.oldest_offset = history.messages.front().offset;
                // Offsets in a history are consecutive: the first one after `after` is found
                // by arithmetic, not by a scan.
                std::size_t first = 0;
                if (after >= read.oldest_offset) first = static_cast<std::size_t>(std::min<std::uint64_t>(after - read.oldest_offset + 1, history.messages.size()));
                const std::size_t count = std::min(max_messages, history.messages.size() - first);
                read.messages.reserve(count);
                for (std::size_t i = first; i < first + count; ++i) {
                    const Retained& retained = history.messages[i];
                    read.messages.push_back(SequencedMessage{stream, history.epoch, retained.offset, retained.unix_ms, retained.payload});
                }
            }
        }
    }
    if (done) done(std::move(read));
}

std::string LocalBus::export_histories() const {
    std::string out;
    ByteWriter writer(out);
    std::lock_guard lock(history_mutex_);
    const std::int64_t oldest_kept_ms = now_unix_ms() - static_cast<std::int64_t>(limits_.max_age.count());
    writer.raw(export_magic);
    writer.u8(export_version);
    writer.u32(static_cast<std::uint32_t>(streams_.size()));
    for (const auto& [name, history] : streams_) {
        writer.u16(static_cast<std::uint16_t>(name.size()));
        writer.raw(name);
        writer.u8(static_cast<std::uint8_t>(history.epoch.size()));
        writer.raw(history.epoch);
        writer.u64(history.last_offset);
        const auto first_young = std::find_if(history.messages.begin(), history.messages.end(),
                                              [&](const Retained& retained) { return retained.unix_ms >= oldest_kept_ms; });
        writer.u32(static_cast<std::uint32_t>(history.messages.end() - first_young));
        for (auto it = first_young; it != history.messages.end(); ++it) {
            writer.u64(it->offset);
            writer.u64(static_cast<std::uint64_t>(it->unix_ms));
            writer.u64(it->payload.size());
            writer.raw(it->payload);
        }
    }
    writer.u64(fnv1a(out));
    return out;
}

void LocalBus::import_histories(std::string_view state) {
    (void)try_import_histories(state);
}

std::string LocalBus::try_import_histories(std::string_view state) {
    constexpr std::size_t checksum_bytes = 8;
    if (state.size() < export_magic.size() + 1 + 4 + checksum_bytes) return "histories: too short";
    const std::string_view body = state.substr(0, state.size() - checksum_bytes);
    ByteReader checksum_reader(state.substr(body.size()));
    std::uint64_t checksum = 0;
    checksum_reader.u64(checksum);
    if (checksum != fnv1a(body)) return "histories: checksum mismatch";

    ByteReader reader(body);
    std::string_view magic;
    std::uint8_t version = 0;
    std::uint32_t stream_count = 0;
    if (!reader.raw(export_magic.size(), magic) || magic != export_magic) return "histories: not an export of LocalBus";
    if (!reader.u8(version) || version != export_version) return "histories: unknown version";
    if (!reader.u32(stream_count)) return "histories: truncated";
    std::map<std::string, StreamHistory, std::less<>> imported;
    for (std::uint32_t s = 0; s < stream_count; ++s) {
        std::uint16_t name_length = 0;
        std::uint8_t epoch_length = 0;
        std::uint32_t message_count = 0;
        std::string_view name, epoch;
        StreamHistory history;
        if (!reader.u16(name_length) || !reader.raw(name_length, name) || !valid_stream_name(name)) return "histories: bad stream name";
        if (imported.count(name) != 0) return "histories: a stream twice";
        if (!reader.u8(epoch_length) || !reader.raw(epoch_length, epoch) || !valid_epoch(epoch)) return "histories: bad epoch";
        if (!reader.u64(history.last_offset) || history.last_offset == 0) return "histories: bad last offset";
        if (!reader.u32(message_count) || message_count > reader.left() / min_message_bytes) return "histories: bad message count";
        history.epoch = std::string(epoch);
        std::uint64_t previous = 0;
        for (std::uint32_t m = 0; m < message_count; ++m) {
            Retained retained;
            std::uint64_t unix_ms = 0, length = 0;
            std::string_view payload;
            if (!reader.u64(retained.offset) || !reader.u64(unix_ms) || !reader.u64(length)) return "histories: truncated";
            if (retained.offset <= previous || retained.offset > history.last_offset) return "histories: offsets out of order";
            if (previous != 0 && retained.offset != previous + 1) return "histories: a gap in offsets";
            if (length > reader.left() || !reader.raw(static_cast<std::size_t>(length), payload)) return "histories: truncated";
            previous = retained.offset;
            retained.unix_ms = static_cast<std::int64_t>(unix_ms);
            retained.payload = std::string(payload);
            history.bytes += retained.payload.size();
            history.messages.push_back(std::move(retained));
        }
        imported.emplace(std::string(name), std::move(history));
    }
    if (!reader.at_end()) return "histories: trailing bytes";

    std::lock_guard lock(history_mutex_);
    const std::int64_t now_ms = now_unix_ms();
    for (auto& [name, history] : imported) {
        if (streams_.count(name) != 0) continue;  // this process has its own history of it already
        cut_locked(history, now_ms);
        streams_.emplace(name, std::move(history));
    }
    return {};
}

}  // namespace hub
