// encode_sequenced / decode_sequenced: the envelope in which a sequenced message reaches the
// bus's handler (hub/bus.hpp). Binary, versioned, little-endian, length-prefixed:
//
//   "\0wsq"  magic: a NUL first, so no text or JSON payload can be taken for an envelope
//   u8       version (1)
//   u16      stream length, then the stream's bytes (at most 1024, no NUL)
//   u8       epoch length, then the epoch (1..64 bytes of printable ASCII)
//   u64      offset (>= 1)
//   i64      unix_ms
//   u64      payload length, then the payload; the envelope ends exactly there
//
// decode checks every length against what is left before it reads, so a truncated or
// mutated envelope gives nullopt, never a read out of bounds.
#include "hub/bus.hpp"
#include "hub/bus_sequenced_detail.hpp"

#include <random>
#include <stdexcept>

#include <fmt/format.h>

namespace hub {

namespace {
constexpr std::string_view envelope_magic{"\0wsq", 4};
constexpr std::uint8_t envelope_version = 1;
}  // namespace

namespace bus_sequenced_detail {

bool valid_stream_name(std::string_view name) {
    return !name.empty() && name.size() <= max_stream_name_bytes && name.find('\0') == std::string_view::npos;
}

bool valid_epoch(std::string_view epoch) {
    if (epoch.empty() || epoch.size() > max_epoch_bytes) return false;
    for (char c : epoch) {
        if (c < 0x21 || c > 0x7e) return false;
    }
    return true;
}

std::string random_epoch() {
    std::random_device device;
    const std::uint64_t high = device();
    const std::uint64_t low = device();
    return fmt::format("{:016x}", (high << 32) | low);
}

}  // namespace bus_sequenced_detail

using namespace bus_sequenced_detail;

std::string encode_sequenced(const SequencedMessage& message) {
    if (!valid_stream_name(message.stream) || !valid_epoch(message.epoch)) {
        throw std::invalid_argument("encode_sequenced: invalid stream name or epoch");
    }
    std::string out;
    out.reserve(envelope_magic.size() + 1 + 2 + message.stream.size() + 1 + message.epoch.size() + 8 + 8 + 8 +
                message.payload.size());
    ByteWriter writer(out);
    writer.raw(envelope_magic);
    writer.u8(envelope_version);
    writer.u16(static_cast<std::uint16_t>(message.stream.size()));
    writer.raw(message.stream);
    writer.u8(static_cast<std::uint8_t>(message.epoch.size()));
    writer.raw(message.epoch);
    writer.u64(message.offset);
    writer.u64(static_cast<std::uint64_t>(message.unix_ms));
    writer.u64(message.payload.size());
    writer.raw(message.payload);
    return out;
}

std::optional<SequencedMessage> decode_sequenced(std::string_view bytes) {
    ByteReader reader(bytes);
    std::string_view magic;
    std::uint8_t version = 0;
    if (!reader.raw(envelope_magic.size(), magic) || magic != envelope_magic) return std::nullopt;
    if (!reader.u8(version) || version != envelope_version) return std::nullopt;
    std::uint16_t stream_length = 0;
    std::uint8_t epoch_length = 0;
    std::uint64_t payload_length = 0;
    std::uint64_t unix_ms = 0;
    std::string_view stream, epoch, payload;
    SequencedMessage message;
    if (!reader.u16(stream_length) || !reader.raw(stream_length, stream) || !valid_stream_name(stream)) return std::nullopt;
    if (!reader.u8(epoch_length) || !reader.raw(epoch_length, epoch) || !valid_epoch(epoch)) return std::nullopt;
    if (!reader.u64(message.offset) || message.offset == 0) return std::nullopt;
    if (!reader.u64(unix_ms)) return std::nullopt;
    if (!reader.u64(payload_length) || payload_length != reader.left()) return std::nullopt;
    if (!reader.raw(static_cast<std::size_t>(payload_length), payload) || !reader.at_end()) return std::nullopt;
    message.stream = std::string(stream);
    message.epoch = std::string(epoch);
    message.unix_ms = static_cast<std::int64_t>(unix_ms);
    message.payload = std::string(payload);
    return message;
}

}  // namespace hub
