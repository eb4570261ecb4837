// Request signatures of the channelstream server API.
//
// 1. itsdangerous' TimestampSigner, as channelstream 0.7.1 and its clients use it: the header
//    X-Channelstream-Secret (or ?secret=) holds `VALUE.TS.MAC` where
//      key = SHA1("itsdangerous.Signer" + "signer" + secret)
//      TS  = base64url(Unix time, big-endian, no leading zero bytes), no padding
//      MAC = base64url(HMAC-SHA1(key, "VALUE.TS")), no padding
//    VALUE is anything (channelstream's clients sign "channelstream" or the endpoint path);
//    the signature is bound to the secret and the time only, so within its validity it can be
//    replayed on any endpoint. Decoding is lenient, as Python's urlsafe_b64decode is, because
//    channelstream's browser signer replaces only the first '+', '/' and '=' it meets.
//
// 2. A stronger scheme of our own (optional): the header X-Channelstream-Signature holds
//    `t=<unix seconds>,v2=<hex HMAC-SHA256(secret, "v2\n" t "\n" METHOD "\n" TARGET "\n"
//    hex(SHA-256(body)))>`, so the signature covers the method, the path with its query and
//    the body; a ReplayCache refuses the same signature a second time.
//
// Both verifiers compare MACs in constant time (CRYPTO_memcmp). Pure functions of their
// arguments (the time is passed in), except ReplayCache, which is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace hub::channelstream {

// ---- encodings ---------------------------------------------------------------------------

/// base64url without padding ('-' and '_' for '+' and '/').
std::string base64url_encode(std::string_view bytes);
/// Decode base64 in either alphabet ('+' '/' or '-' '_', even mixed), ignoring every '='
/// (padding or stray, as channelstream's browser signer leaves them). nullopt for any other
/// character or an impossible length.
std::optional<std::string> base64_decode_lenient(std::string_view text);
std::string to_hex(std::string_view bytes);

// ---- itsdangerous TimestampSigner --------------------------------------------------------

/// The default value channelstream's own clients sign.
inline constexpr std::string_view kDefaultSignedValue = "channelstream";

/// `value.TS.MAC` for `unix_time`, byte for byte what itsdangerous' TimestampSigner(secret)
/// produces.
std::string timestamp_sign(std::string_view value, std::string_view secret, std::int64_t unix_time);

enum class SignatureStatus {
    Valid,
    Malformed,   ///< not VALUE.TS.MAC, or TS/MAC not base64
    BadMac,      ///< wrong secret or tampered
    Expired,     ///< older than max_age
    FromFuture,  ///< dated further ahead than max_future_skew
};
std::string_view to_string(SignatureStatus status) noexcept;

struct TimestampVerifyOptions {
    /// How old a signature may be (channelstream: 60 s with validate_requests on). nullopt:
    /// no age limit (channelstream with validate_requests off still checks the MAC).
    std::optional<std::chrono::seconds> max_age = std::chrono::seconds{60};
    /// How far ahead of our clock a signature may be dated. channelstream has no such limit
    /// (a signature dated tomorrow stays valid until then); a little skew between machines'
    /// clocks is normal, a day is not.
    std::chrono::seconds max_future_skew = std::chrono::seconds{30};
};

struct TimestampVerification {
    SignatureStatus status = SignatureStatus::Malformed;
    std::string value;            ///< the signed VALUE, when the MAC matched
    std::int64_t timestamp = 0;   ///< the signed time, when it decoded
};

TimestampVerification timestamp_verify(std::string_view signed_value, std::string_view secret, std::int64_t now,
                                       const TimestampVerifyOptions& options = {});

// ---- the stronger scheme (HMAC-SHA256 over the request) ------------------------------------

inline constexpr std::string_view kStrongSignatureHeader = "X-Channelstream-Signature";

/// What the strong signature covers.
struct SignedRequest {
    std::string_view method;  ///< "POST"
    std::string_view target;  ///< path and query as sent: "/message" or "/disconnect?conn_id=..."
    std::string_view body;
};

/// The header value `t=<time>,v2=<hex mac>` for a request.
std::string request_sign(const SignedRequest& request, std::string_view secret, std::int64_t unix_time);

struct RequestVerifyOptions {
    std::chrono::seconds max_age{60};          ///< as the itsdangerous scheme's default
    std::chrono::seconds max_future_skew{30};
};

struct RequestVerification {
    SignatureStatus status = SignatureStatus::Malformed;
    std::int64_t timestamp = 0;
    std::string mac_hex;  ///< the MAC as sent (lower-cased), for the replay cache
};

RequestVerification request_verify(std::string_view header_value, const SignedRequest& request, std::string_view secret,
                                   std::int64_t now, const RequestVerifyOptions& options = {});

/// Remembers the strong signatures seen while they are valid, so each is accepted once.
/// Bounded: past `max_entries` live entries it refuses new ones (fails closed) rather than
/// forget one that could then be replayed. Thread-safe.
class ReplayCache {
public:
    /// 100k entries over a 90 s window is ~1100 signed requests a second, far above what a
    /// channelstream deployment sends; each entry costs ~150 bytes.
    static constexpr std::size_t kDefaultMaxEntries = 100'000;

    enum class Result { Fresh, Replayed, Full };

    explicit ReplayCache(std::size_t max_entries = kDefaultMaxEntries) : max_entries_(max_entries) {}
    /// Record `mac` (valid until `expires_at`, Unix seconds) unless it was seen: Fresh the first
    /// time, Replayed after; Full when the cache holds max_entries unexpired signatures.
    Result check_and_remember(const std::string& mac, std::int64_t expires_at, std::int64_t now);
    std::size_t size() const;

private:
    void forget_expired(std::int64_t now);
    std::size_t max_entries_;
    mutable std::mutex mutex_;
    std::unordered_set<std::string> seen_;
    std::deque<std::pair<std::int64_t, std::string>> by_expiry_;  ///< in insertion order
};

}  // namespace hub::channelstream
