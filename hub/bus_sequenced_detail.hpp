// What the buses' sequenced streams share (hub/bus_sequenced.cpp, hub/local_bus.cpp, the
// RedisBus files): the limits of names and epochs, bounds-checked little-endian byte
// reading and writing, and fresh random epochs. Internal to the hub: not installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hub::bus_sequenced_detail {

constexpr std::size_t max_stream_name_bytes = 1024;
constexpr std::size_t max_epoch_bytes = 64;

/// 1..1024 bytes, no NUL.
bool valid_stream_name(std::string_view name);
/// 1..64 bytes of printable ASCII without spaces.
bool valid_epoch(std::string_view epoch);
/// 16 lowercase hex digits from std::random_device (the kernel's generator on Linux): two
/// histories never share an epoch by chance.
std::string random_epoch();

/// Appends fixed-width little-endian numbers and raw bytes to a string.
class ByteWriter {
public:
    explicit ByteWriter(std::string& out) : out_(out) {}
    void u8(std::uint8_t value) { out_.push_back(static_cast<char>(value)); }
    void u16(std::uint16_t value) { number(value, 2); }
    void u32(std::uint32_t value) { number(value, 4); }
    void u64(std::uint64_t value) { number(value, 8); }
    void raw(std::string_view bytes) { out_.append(bytes); }

private:
    void number(std::uint64_t value, int width) {
        for (int i = 0; i < width; ++i) out_.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
    }
    std::string& out_;
};

/// Reads what ByteWriter wrote; every read checks what is left first and fails (false,
/// nothing consumed) rather than read past the end.
class ByteReader {
public:
    explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
    std::size_t left() const noexcept { return bytes_.size() - position_; }
    bool at_end() const noexcept { return position_ == bytes_.size(); }
    bool u8(std::uint8_t& out) { return number(out, 1); }
    bool u16(std::uint16_t& out) { return number(out, 2); }
    bool u32(std::uint32_t& out) { return number(out, 4); }
    bool u64(std::uint64_t& out) { return number(out, 8); }
    bool raw(std::size_t count, std::string_view& out) {
        if (count > left()) return false;
        out = bytes_.substr(position_, count);
        position_ += count;
        return true;
    }

private:
    template <typename Number>
    bool number(Number& out, std::size_t width) {
        if (width > left()) return false;
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < width; ++i) {
            value |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes_[position_ + i])) << (8 * i);
        }
        position_ += width;
        out = static_cast<Number>(value);
        return true;
    }
    std::string_view bytes_;
    std::size_t position_ = 0;
};

}  // namespace hub::bus_sequenced_detail
