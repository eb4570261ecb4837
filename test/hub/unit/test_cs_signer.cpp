// The channelstream request signers: itsdangerous' TimestampSigner (known answer, Debian's
// python3-itsdangerous as an independent implementation, channelstream's browser signer)
// and the stronger HMAC-SHA256 request signature with its replay cache.
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "hub/channelstream/signer.hpp"

using namespace hub::channelstream;

namespace {

constexpr std::int64_t kTime = 1600000000;

/// Run a Python snippet with Debian's python3; nullopt when itsdangerous is not importable.
std::optional<std::string> run_python(const std::string& script) {
    const std::string command = "/usr/bin/python3 -c '" + script + "' 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    if (!pipe) return std::nullopt;
    std::string out;
    std::array<char, 256> buffer{};
    while (std::fgets(buffer.data(), buffer.size(), pipe.get())) out += buffer.data();
    if (pclose(pipe.release()) != 0) return std::nullopt;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

bool python_has_itsdangerous() {
    static const bool available = run_python("import itsdangerous; print(1)").value_or("") == "1";
    return available;
}

/// What channelstream's bundled browser signer (signer.js) sends: standard base64 with only
/// the FIRST '=', '+' and '/' replaced (JavaScript's String.replace with a string pattern).
std::string browser_strip(std::string b64) {
    if (auto at = b64.find('='); at != std::string::npos) b64.erase(at, 1);
    if (auto at = b64.find('+'); at != std::string::npos) b64[at] = '-';
    if (auto at = b64.find('/'); at != std::string::npos) b64[at] = '_';
    return b64;
}

std::string standard_b64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string browser_sign(std::string_view secret, std::int64_t unix_time) {
    unsigned char key[SHA_DIGEST_LENGTH];
    const std::string material = "itsdangerous.Signersigner" + std::string(secret);
    SHA1(reinterpret_cast<const unsigned char*>(material.data()), material.size(), key);
    std::string ts_bytes;
    for (std::uint64_t t = static_cast<std::uint64_t>(unix_time); t > 0; t >>= 8) ts_bytes.insert(ts_bytes.begin(), static_cast<char>(t & 0xff));
    const std::string value = "channelstream." + browser_strip(standard_b64(ts_bytes));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha1(), key, sizeof key, reinterpret_cast<const unsigned char*>(value.data()), value.size(), mac, &mac_len);
    return value + "." + browser_strip(standard_b64(std::string_view(reinterpret_cast<const char*>(mac), mac_len)));
}

}  // namespace

TEST_CASE("cs signer: base64") {
    SUBCASE("url-safe encoding without padding") {
        CHECK(base64url_encode("") == "");
        CHECK(base64url_encode("f") == "Zg");
        CHECK(base64url_encode("fo") == "Zm8");
        CHECK(base64url_encode("foo") == "Zm9v");
        CHECK(base64url_encode("\xfb\xff\xbf") == "-_-_");
    }
    SUBCASE("lenient decoding accepts both alphabets and stray padding") {
        CHECK(base64_decode_lenient("Zg").value() == "f");
        CHECK(base64_decode_lenient("Zg==").value() == "f");
        CHECK(base64_decode_lenient("Zg=").value() == "f");
        CHECK(base64_decode_lenient("Zm8").value() == "fo");
        CHECK(base64_decode_lenient("-_-_").value() == "\xfb\xff\xbf");
        CHECK(base64_decode_lenient("+/+/").value() == "\xfb\xff\xbf");
        CHECK(base64_decode_lenient("-/+_").value() == "\xfb\xff\xbf");
        CHECK(base64_decode_lenient("").value() == "");
    }
    SUBCASE("anything else is refused") {
        CHECK_FALSE(base64_decode_lenient("Zm9v!").has_value());
        CHECK_FALSE(base64_decode_lenient("Z").has_value());
        CHECK_FALSE(base64_decode_lenient("Zm 9v").has_value());
        CHECK_FALSE(base64_decode_lenient(std::string_view("Zm\0v", 4)).has_value());
    }
}

TEST_CASE("cs signer: itsdangerous TimestampSigner") {
    SUBCASE("known answer") {
        CHECK(timestamp_sign("channelstream", "secret", kTime) == "channelstream.X14QAA.QLT3kgcJYg14C3PAy4wtyg5uGgI");
    }
    SUBCASE("a fresh signature verifies and gives back value and time") {
        const auto v = timestamp_verify("channelstream.X14QAA.QLT3kgcJYg14C3PAy4wtyg5uGgI", "secret", kTime + 5);
        CHECK(v.status == SignatureStatus::Valid);
        CHECK(v.value == "channelstream");
        CHECK(v.timestamp == kTime);
    }
    SUBCASE("a value holding dots is split at the last two") {
        const std::string s = timestamp_sign("a.b.c", "k", kTime);
        const auto v = timestamp_verify(s, "k", kTime);
        CHECK(v.status == SignatureStatus::Valid);
        CHECK(v.value == "a.b.c");
    }
    SUBCASE("age: 60 s is valid, 61 s expired; no limit when max_age is unset") {
        const std::string s = timestamp_sign("channelstream", "secret", kTime);
        CHECK(timestamp_verify(s, "secret", kTime + 60).status == SignatureStatus::Valid);
        CHECK(timestamp_verify(s, "secret", kTime + 61).status == SignatureStatus::Expired);
        TimestampVerifyOptions no_age;
        no_age.max_age.reset();
        CHECK(timestamp_verify(s, "secret", kTime + 86400 * 365, no_age).status == SignatureStatus::Valid);
    }
    SUBCASE("dated ahead: within the skew valid, beyond it refused (even without max_age)") {
        const std::string s = timestamp_sign("channelstream", "secret", kTime);
        CHECK(timestamp_verify(s, "secret", kTime - 30).status == SignatureStatus::Valid);
        CHECK(timestamp_verify(s, "secret", kTime - 31).status == SignatureStatus::FromFuture);
        TimestampVerifyOptions no_age;
        no_age.max_age.reset();
        CHECK(timestamp_verify(s, "secret", kTime - 86400, no_age).status == SignatureStatus::FromFuture);
    }
    SUBCASE("tampering and the wrong secret give BadMac") {
        const std::string s = timestamp_sign("channelstream", "secret", kTime);
        CHECK(timestamp_verify(s, "other", kTime).status == SignatureStatus::BadMac);
        std::string tampered_value = s;
        tampered_value[0] = 'C';
        CHECK(timestamp_verify(tampered_value, "secret", kTime).status == SignatureStatus::BadMac);
        // a later time swapped in without re-signing
        const std::string later = "channelstream." + base64url_encode("\x5f\x5e\x10\x10") + s.substr(s.rfind('.'));
        CHECK(timestamp_verify(later, "secret", kTime).status == SignatureStatus::BadMac);
        std::string tampered_mac = s;
        tampered_mac.back() = tampered_mac.back() == 'A' ? 'B' : 'A';
        CHECK(timestamp_verify(tampered_mac, "secret", kTime).status == SignatureStatus::BadMac);
        CHECK(timestamp_verify(s.substr(0, s.size() - 4), "secret", kTime).status == SignatureStatus::BadMac);
    }
    SUBCASE("malformed input") {
        CHECK(timestamp_verify("", "secret", kTime).status == SignatureStatus::Malformed);
        CHECK(timestamp_verify("channelstream", "secret", kTime).status == SignatureStatus::Malformed);
        CHECK(timestamp_verify("channelstream.QLT3kgcJYg14C3PAy4wtyg5uGgI", "secret", kTime).status != SignatureStatus::Valid);
        CHECK(timestamp_verify("channelstream.X14QAA.QLT3kgcJ!g14C3PAy4wtyg5uGgI", "secret", kTime).status ==
              SignatureStatus::Malformed);
        // a correctly MACed but empty timestamp
        const std::string signed_part = "channelstream.";
        CHECK(timestamp_verify(signed_part + ".x", "secret", kTime).status != SignatureStatus::Valid);
    }
    SUBCASE("channelstream's browser signer (some '+', '/', '=' left in place) verifies") {
        // Times whose base64 forms keep a '+' or '/' after the first replacement, and the
        // '=' padding of a 4-byte time (8 chars, 2 '=' of which only one is removed).
        int verified = 0;
        for (std::int64_t t = kTime; t < kTime + 400; ++t) {
            const std::string s = browser_sign("secret", t);
            const auto v = timestamp_verify(s, "secret", t);
            REQUIRE_MESSAGE(v.status == SignatureStatus::Valid, s);
            CHECK(v.timestamp == t);
            ++verified;
        }
        CHECK(verified == 400);
        CHECK(browser_sign("secret", kTime).find('=') != std::string::npos);
    }
}

TEST_CASE("cs signer: cross-checked with Debian's python3-itsdangerous") {
    if (!python_has_itsdangerous()) {
        MESSAGE("SKIPPED: /usr/bin/python3 cannot import itsdangerous (apt-get install python3-itsdangerous)");
        return;
    }
    SUBCASE("python signs at a fixed time, we verify and produce the same text") {
        const auto py = run_python(
            "import itsdangerous\n"
            "class S(itsdangerous.TimestampSigner):\n"
            "    def get_timestamp(self): return 1234567890\n"
            "print(S(\"s3cr3t-key\").sign(\"/connect\").decode())");
        REQUIRE(py.has_value());
        CHECK(*py == timestamp_sign("/connect", "s3cr3t-key", 1234567890));
        CHECK(timestamp_verify(*py, "s3cr3t-key", 1234567890 + 10).status == SignatureStatus::Valid);
    }
    SUBCASE("python signs now, we verify") {
        const auto py = run_python("import itsdangerous; print(itsdangerous.TimestampSigner(\"abc\").sign(\"channelstream\").decode())");
        REQUIRE(py.has_value());
        const auto v = timestamp_verify(*py, "abc", std::time(nullptr));
        CHECK(v.status == SignatureStatus::Valid);
        CHECK(v.value == "channelstream");
    }
    SUBCASE("we sign now, python unsigns with max_age=60; a tampered one python refuses") {
        const std::string ours = timestamp_sign("channelstream", "abc", std::time(nullptr));
        const auto ok = run_python("import itsdangerous; print(itsdangerous.TimestampSigner(\"abc\").unsign(\"" + ours +
                                   "\", max_age=60).decode())");
        REQUIRE(ok.has_value());
        CHECK(*ok == "channelstream");
        std::string tampered = ours;
        tampered[1] = 'H';
        const auto refused = run_python(
            "import itsdangerous\n"
            "try:\n"
            "    itsdangerous.TimestampSigner(\"abc\").unsign(\"" + tampered + "\", max_age=60); print(\"accepted\")\n"
            "except itsdangerous.BadSignature: print(\"refused\")");
        REQUIRE(refused.has_value());
        CHECK(*refused == "refused");
        CHECK(timestamp_verify(tampered, "abc", std::time(nullptr)).status == SignatureStatus::BadMac);
    }
    SUBCASE("python accepts the browser signer's text too, as we do") {
        const std::string browser = browser_sign("abc", std::time(nullptr));
        const auto py = run_python("import itsdangerous; print(itsdangerous.TimestampSigner(\"abc\").unsign(\"" + browser +
                                   "\", max_age=60).decode())");
        REQUIRE(py.has_value());
        CHECK(*py == "channelstream");
    }
}

TEST_CASE("cs signer: HMAC-SHA256 request signature") {
    const SignedRequest request{"POST", "/message", R"([{"channel":"a","user":"u","message":{}}])"};
    const std::string header = request_sign(request, "secret", kTime);

    SUBCASE("header shape") {
        CHECK(header.starts_with("t=1600000000,v2="));
        CHECK(header.size() == std::string("t=1600000000,v2=").size() + 64);
    }
    SUBCASE("verifies; parts may be reordered, spaced and upper-cased") {
        CHECK(request_verify(header, request, "secret", kTime).status == SignatureStatus::Valid);
        const std::string mac = header.substr(header.find("v2=") + 3);
        std::string upper = mac;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        CHECK(request_verify("v2=" + upper + " , t=1600000000", request, "secret", kTime).status == SignatureStatus::Valid);
    }
    SUBCASE("bound to method, target, body, time and secret") {
        CHECK(request_verify(header, {"PATCH", request.target, request.body}, "secret", kTime).status == SignatureStatus::BadMac);
        CHECK(request_verify(header, {"POST", "/connect", request.body}, "secret", kTime).status == SignatureStatus::BadMac);
        CHECK(request_verify(header, {"POST", "/message?x=1", request.body}, "secret", kTime).status == SignatureStatus::BadMac);
        CHECK(request_verify(header, {"POST", request.target, "[]"}, "secret", kTime).status == SignatureStatus::BadMac);
        CHECK(request_verify(header, request, "secret2", kTime).status == SignatureStatus::BadMac);
        std::string later = header;
        later.replace(2, 10, "1600000001");
        CHECK(request_verify(later, request, "secret", kTime).status == SignatureStatus::BadMac);
    }
    SUBCASE("age and future skew") {
        CHECK(request_verify(header, request, "secret", kTime + 60).status == SignatureStatus::Valid);
        CHECK(request_verify(header, request, "secret", kTime + 61).status == SignatureStatus::Expired);
        CHECK(request_verify(header, request, "secret", kTime - 31).status == SignatureStatus::FromFuture);
    }
    SUBCASE("malformed") {
        CHECK(request_verify("", request, "secret", kTime).status == SignatureStatus::Malformed);
        CHECK(request_verify("t=1600000000", request, "secret", kTime).status == SignatureStatus::Malformed);
        CHECK(request_verify("t=16x,v2=" + std::string(64, 'a'), request, "secret", kTime).status == SignatureStatus::Malformed);
        CHECK(request_verify("t=1600000000,v2=abc", request, "secret", kTime).status == SignatureStatus::Malformed);
    }
}

TEST_CASE("cs signer: replay cache") {
    SUBCASE("a signature is accepted once while it is valid, again after it expired") {
        ReplayCache cache;
        CHECK(cache.check_and_remember("mac1", 100, 10) == ReplayCache::Result::Fresh);
        CHECK(cache.check_and_remember("mac1", 100, 50) == ReplayCache::Result::Replayed);
        CHECK(cache.check_and_remember("mac2", 100, 50) == ReplayCache::Result::Fresh);
        CHECK(cache.size() == 2);
        // past its expiry the entry is forgotten (the signature itself is then refused as expired)
        CHECK(cache.check_and_remember("mac1", 200, 101) == ReplayCache::Result::Fresh);
        CHECK(cache.size() == 1);
    }
    SUBCASE("full: refuses new signatures instead of forgetting live ones") {
        ReplayCache cache(2);
        CHECK(cache.check_and_remember("a", 100, 0) == ReplayCache::Result::Fresh);
        CHECK(cache.check_and_remember("b", 100, 0) == ReplayCache::Result::Fresh);
        CHECK(cache.check_and_remember("c", 100, 0) == ReplayCache::Result::Full);
        CHECK(cache.check_and_remember("a", 100, 0) == ReplayCache::Result::Replayed);
        CHECK(cache.check_and_remember("c", 200, 101) == ReplayCache::Result::Fresh);
    }
}
