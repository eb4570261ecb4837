#include "hub/channelstream/signer.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>
#include <charconv>

namespace hub::channelstream {

namespace {

std::string sha1(std::string_view data) {
    std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
    SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
    return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

std::string sha256(std::string_view data) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
    return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int length = 0;
    HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         mac.data(), &length);
    return std::string(reinterpret_cast<const char*>(mac.data()), length);
}

bool equal_constant_time(std::string_view a, std::string_view b) {
    // The lengths are public (a MAC has a fixed size); the contents are compared in full.
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

/// itsdangerous' int_to_bytes: big-endian, without leading zero bytes (0 gives no bytes).
std::string int_to_bytes(std::uint64_t value) {
    std::string bytes;
    while (value > 0) {
        bytes.insert(bytes.begin(), static_cast<char>(value & 0xff));
        value >>= 8;
    }
    return bytes;
}

/// The key itsdangerous' Signer derives with its default "django-concat" derivation.
std::string derive_key(std::string_view secret) {
    std::string material = "itsdangerous.Signer";
    material += "signer";
    material += secret;
    return sha1(material);
}

SignatureStatus check_age(std::int64_t timestamp, std::int64_t now, std::optional<std::chrono::seconds> max_age,
                          std::chrono::seconds max_future_skew) {
    const std::int64_t age = now - timestamp;
    if (age < -max_future_skew.count()) return SignatureStatus::FromFuture;
    if (max_age && age > max_age->count()) return SignatureStatus::Expired;
    return SignatureStatus::Valid;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int written =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                        static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(written));
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) {
        if (c == '+') c = '-';
        else if (c == '/') c = '_';
    }
    return out;
}

std::optional<std::string> base64_decode_lenient(std::string_view text) {
    std::string standard;
    standard.reserve(text.size() + 3);
    for (char c : text) {
        if (c == '=') continue;
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        const bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!alphabet) return std::nullopt;
        standard += c;
    }
    const std::size_t remainder = standard.size() % 4;
    if (remainder == 1) return std::nullopt;  // 6 bits cannot end a byte
    const std::size_t padding = remainder == 0 ? 0 : 4 - remainder;
    standard.append(padding, '=');
    std::string out(standard.size() / 4 * 3, '\0');
    const int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(standard.data()), static_cast<int>(standard.size()));
    if (written < 0) return std::nullopt;
    // EVP_DecodeBlock counts the padding as zero bytes; drop them.
    out.resize(static_cast<std::size_t>(written) - padding);
    return out;
}

std::string to_hex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += kDigits[c >> 4];
        out += kDigits[c & 0x0f];
    }
    return out;
}

std::string_view to_string(SignatureStatus status) noexcept {
    switch (status) {
        case SignatureStatus::Valid: return "valid";
        case SignatureStatus::Malformed: return "malformed";
        case SignatureStatus::BadMac: return "bad signature";
        case SignatureStatus::Expired: return "expired";
        case SignatureStatus::FromFuture: return "dated in the future";
    }
    return "unknown";
}

std::string timestamp_sign(std::string_view value, std::string_view secret, std::int64_t unix_time) {
    std::string signed_part(value);
    signed_part += '.';
    signed_part += base64url_encode(int_to_bytes(static_cast<std::uint64_t>(unix_time)));
    const std::string mac = hmac(EVP_sha1(), derive_key(secret), signed_part);
    return signed_part + '.' + base64url_encode(mac);
}

TimestampVerification timestamp_verify(std::string_view signed_value, std::string_view secret, std::int64_t now,
                                       const TimestampVerifyOptions& options) {
    TimestampVerification result;
    const std::size_t mac_dot = signed_value.rfind('.');
    if (mac_dot == std::string_view::npos) return result;
    const std::string_view signed_part = signed_value.substr(0, mac_dot);
    const std::size_t ts_dot = signed_part.rfind('.');
    if (ts_dot == std::string_view::npos) return result;

    const std::optional<std::string> mac = base64_decode_lenient(signed_value.substr(mac_dot + 1));
    if (!mac) return result;
    // The MAC covers the text exactly as sent (a browser-signed TS may hold '+' or '=').
    const std::string expected = hmac(EVP_sha1(), derive_key(secret), signed_part);
    if (!equal_constant_time(*mac, expected)) {
        result.status = SignatureStatus::BadMac;
        return result;
    }

    const std::optional<std::string> ts_bytes = base64_decode_lenient(signed_part.substr(ts_dot + 1));
    if (!ts_bytes || ts_bytes->empty() || ts_bytes->size() > 8) return result;  // Malformed
    std::uint64_t timestamp = 0;
    for (unsigned char byte : *ts_bytes) timestamp = (timestamp << 8) | byte;
    if (timestamp > static_cast<std::uint64_t>(INT64_MAX)) return result;
    result.timestamp = static_cast<std::int64_t>(timestamp);
    result.value = std::string(signed_part.substr(0, ts_dot));
    result.status = check_age(result.timestamp, now, options.max_age, options.max_future_skew);
    return result;
}

namespace {

std::string request_mac_hex(const SignedRequest& request, std::string_view secret, std::int64_t unix_time) {
    std::string message = "v2\n";
    message += std::to_string(unix_time);
    message += '\n';
    message += request.method;
    message += '\n';
    message += request.target;
    message += '\n';
    message += to_hex(sha256(request.body));
    return to_hex(hmac(EVP_sha256(), secret, message));
}

}  // namespace

std::string request_sign(const SignedRequest& request, std::string_view secret, std::int64_t unix_time) {
    return "t=" + std::to_string(unix_time) + ",v2=" + request_mac_hex(request, secret, unix_time);
}

RequestVerification request_verify(std::string_view header_value, const SignedRequest& request, std::string_view secret,
                                   std::int64_t now, const RequestVerifyOptions& options) {
    RequestVerification result;
    std::optional<std::int64_t> timestamp;
    std::string mac;
    // "t=...,v2=..." in any order, spaces allowed around the parts.
    while (!header_value.empty()) {
        const std::size_t comma = header_value.find(',');
        std::string_view part = header_value.substr(0, comma);
        header_value = comma == std::string_view::npos ? std::string_view{} : header_value.substr(comma + 1);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
        if (part.starts_with("t=")) {
            std::int64_t parsed = 0;
            const std::string_view digits = part.substr(2);
            const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), parsed);
            if (error != std::errc{} || end != digits.data() + digits.size() || digits.empty()) return result;
            timestamp = parsed;
        } else if (part.starts_with("v2=")) {
            mac = std::string(part.substr(3));
            for (char& c : mac) {
                if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
            }
        }
    }
    if (!timestamp || mac.size() != 2 * SHA256_DIGEST_LENGTH) return result;
    result.timestamp = *timestamp;
    if (!equal_constant_time(mac, request_mac_hex(request, secret, *timestamp))) {
        result.status = SignatureStatus::BadMac;
        return result;
    }
    result.mac_hex = std::move(mac);
    result.status = check_age(*timestamp, now, options.max_age, options.max_future_skew);
    return result;
}

ReplayCache::Result ReplayCache::check_and_remember(const std::string& mac, std::int64_t expires_at, std::int64_t now) {
    std::lock_guard lock(mutex_);
    forget_expired(now);
    if (seen_.contains(mac)) return Result::Replayed;
    if (seen_.size() >= max_entries_) return Result::Full;
    seen_.insert(mac);
    by_expiry_.emplace_back(expires_at, mac);
    return Result::Fresh;
}

std::size_t ReplayCache::size() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
}

void ReplayCache::forget_expired(std::int64_t now) {
    // Every entry lives for the same window, so insertion order is expiry order (up to the
    // signers' clock skew, which only keeps an entry a little longer).
    while (!by_expiry_.empty() && by_expiry_.front().first < now) {
        seen_.erase(by_expiry_.front().second);
        by_expiry_.pop_front();
    }
}

}  // namespace hub::channelstream
