#include "hub/channelstream/values.hpp"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace hub::channelstream {

namespace {

std::string format_uuid(const unsigned char* bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        out += kDigits[bytes[i] >> 4];
        out += kDigits[bytes[i] & 0x0f];
    }
    return out;
}

void set_version4(unsigned char* bytes) {
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
    static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

struct Cursor {
    std::string_view text;
    std::size_t at = 0;
    bool done() const { return at >= text.size(); }
    bool peek(char c) const { return at < text.size() && text[at] == c; }
    bool take(char c) {
        if (!peek(c)) return false;
        ++at;
        return true;
    }
    std::optional<unsigned> digits(std::size_t count) {
        if (at + count > text.size()) return std::nullopt;
        unsigned value = 0;
        for (std::size_t i = 0; i < count; ++i) {
            const char c = text[at + i];
            if (c < '0' || c > '9') return std::nullopt;
            value = value * 10 + static_cast<unsigned>(c - '0');
        }
        at += count;
        return value;
    }
};

}  // namespace

Micros now_micros() noexcept {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string iso_timestamp(Micros at) {
    std::int64_t days = at / 86'400'000'000;
    std::int64_t rest = at % 86'400'000'000;
    if (rest < 0) {
        rest += 86'400'000'000;
        --days;
    }
    std::int64_t year = 0;
    unsigned month = 0, day = 0;
    civil_from_days(days, year, month, day);
    const auto seconds_of_day = static_cast<unsigned>(rest / 1'000'000);
    const auto micros = static_cast<unsigned>(rest % 1'000'000);
    char buffer[48];
    int n = std::snprintf(buffer, sizeof buffer, "%04lld-%02u-%02uT%02u:%02u:%02u", static_cast<long long>(year), month, day,
                          seconds_of_day / 3600, seconds_of_day / 60 % 60, seconds_of_day % 60);
    if (micros != 0) n += std::snprintf(buffer + n, sizeof buffer - static_cast<std::size_t>(n), ".%06u", micros);
    return std::string(buffer, static_cast<std::size_t>(n));
}

std::optional<std::string> normalize_iso_datetime(std::string_view text) {
    Cursor c{text};
    const auto year = c.digits(4);
    if (!year || !c.take('-')) return std::nullopt;
    const auto month = c.digits(2);
    if (!month || *month < 1 || *month > 12 || !c.take('-')) return std::nullopt;
    const auto day = c.digits(2);
    if (!day || *day < 1 || *day > days_in_month(*year, *month)) return std::nullopt;
    unsigned hour = 0, minute = 0, second = 0, micros = 0;
    if (!c.done()) {
        if (!c.take('T') && !c.take(' ')) return std::nullopt;
        const auto h = c.digits(2);
        if (!h || *h > 23 || !c.take(':')) return std::nullopt;
        const auto m = c.digits(2);
        if (!m || *m > 59) return std::nullopt;
        hour = *h;
        minute = *m;
        if (c.take(':')) {
            const auto s = c.digits(2);
            if (!s || *s > 59) return std::nullopt;
            second = *s;
            if (c.take('.')) {
                std::size_t count = 0;
                unsigned scale = 100000;
                while (!c.done() && c.text[c.at] >= '0' && c.text[c.at] <= '9') {
                    if (count < 6) micros += static_cast<unsigned>(c.text[c.at] - '0') * scale;
                    scale /= 10;
                    ++count;
                    ++c.at;
                }
                if (count == 0) return std::nullopt;
            }
        }
    }
    std::string zone;
    if (c.take('Z') || c.take('z')) {
        zone = "Z";  // what channelstream's JSON encoder prints for UTC
    } else if (c.peek('+') || c.peek('-')) {
        const char sign = c.text[c.at++];
        const auto zh = c.digits(2);
        if (!zh || *zh > 23) return std::nullopt;
        c.take(':');
        const auto zm = c.digits(2);
        if (!zm || *zm > 59) return std::nullopt;
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "%c%02u:%02u", sign, *zh, *zm);
        zone = (*zh == 0 && *zm == 0) ? "Z" : buffer;
    }
    if (!c.done()) return std::nullopt;
    const Micros at = (days_from_civil(*year, *month, *day) * 86400 + hour * 3600 + minute * 60 + second) * 1'000'000 + micros;
    return iso_timestamp(at) + zone;
}

std::string random_uuid() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        // OpenSSL's generator failing is not something to recover from quietly.
        std::abort();
    }
    set_version4(bytes.data());
    return format_uuid(bytes.data());
}

std::string derive_uuid(std::string_view seed, std::uint64_t index) {
    std::string material(seed);
    material += ':';
    material += std::to_string(index);
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    SHA256(reinterpret_cast<const unsigned char*>(material.data()), material.size(), digest.data());
    set_version4(digest.data());
    return format_uuid(digest.data());
}

std::optional<std::string> canonical_uuid(std::string_view text) {
    if (text.starts_with("urn:uuid:")) text.remove_prefix(9);
    if (text.size() >= 2 && text.front() == '{' && text.back() == '}') text = text.substr(1, text.size() - 2);
    std::array<unsigned char, 16> bytes{};
    std::size_t nibbles = 0;
    for (char c : text) {
        if (c == '-') continue;
        int value = -1;
        if (c >= '0' && c <= '9') value = c - '0';
        else if (c >= 'a' && c <= 'f') value = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') value = c - 'A' + 10;
        if (value < 0 || nibbles >= 32) return std::nullopt;
        bytes[nibbles / 2] = static_cast<unsigned char>(bytes[nibbles / 2] | (nibbles % 2 == 0 ? value << 4 : value));
        ++nibbles;
    }
    if (nibbles != 32) return std::nullopt;
    return format_uuid(bytes.data());
}

}  // namespace hub::channelstream
