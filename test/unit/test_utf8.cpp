// The incremental UTF-8 validator, checked against an independent reference decoder.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "test/unit/test_util.hpp"
#include "test/unit/utf8_reference.hpp"
#include "websock/codec/utf8.hpp"

using websock::codec::is_valid_utf8;
using websock::codec::Utf8Validator;
using test_util::hex;

namespace {

using utf8_reference::npos;
using utf8_reference::RefResult;

RefResult reference(const std::uint8_t* s, std::size_t n) { return utf8_reference::check(s, n); }
RefResult reference(std::string_view s) { return reference(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

// ---- driving the validator -------------------------------------------------------------

/// Feed byte by byte; the index of the byte at which feed() first returned false, or npos.
std::size_t fail_index_bytewise(const std::uint8_t* s, std::size_t n, bool& complete) {
    Utf8Validator v;
    for (std::size_t i = 0; i < n; ++i) {
        if (!v.feed(s + i, 1)) {
            complete = false;
            return i;
        }
    }
    complete = v.complete();
    return npos;
}

/// Does feeding the whole input at once agree with the reference? Returns a description
/// of the disagreement, or empty.
std::string compare_oneshot(const std::uint8_t* s, std::size_t n, const RefResult& ref) {
    Utf8Validator v;
    const bool fed = v.feed(s, n);
    if (fed != (ref.fail_at == npos)) return "feed() result";
    if (v.failed() == fed) return "failed()";
    if (v.complete() != ref.valid) return "complete()";
    if (is_valid_utf8({reinterpret_cast<const char*>(s), n}) != ref.valid) return "is_valid_utf8()";
    return {};
}

/// Feed with one cut at `c`; same answer as the reference?
bool agrees_split(const std::uint8_t* s, std::size_t n, std::size_t c, const RefResult& ref) {
    Utf8Validator v;
    bool fed = v.feed(s, c);
    fed = fed && v.feed(s + c, n - c);
    return fed == (ref.fail_at == npos) && v.complete() == ref.valid;
}

struct Mismatches {
    std::size_t count = 0;
    std::string first;
    void add(const std::uint8_t* s, std::size_t n, const std::string& what) {
        if (count++ == 0) first = hex({reinterpret_cast<const char*>(s), n}) + ": " + what;
    }
};

/// Every check for one input: one-shot, byte by byte (fail index), every single cut.
void check_sequence(const std::uint8_t* s, std::size_t n, Mismatches& m, bool splits = true) {
    const RefResult ref = reference(s, n);
    if (auto what = compare_oneshot(s, n, ref); !what.empty()) m.add(s, n, what);
    bool complete = false;
    const std::size_t at = fail_index_bytewise(s, n, complete);
    if (at != ref.fail_at) m.add(s, n, "fail index " + std::to_string(at) + " != " + std::to_string(ref.fail_at));
    if (complete != ref.valid) m.add(s, n, "complete() byte by byte");
    if (splits)
        for (std::size_t c = 1; c < n; ++c)
            if (!agrees_split(s, n, c, ref)) m.add(s, n, "split at " + std::to_string(c));
}

void check_string(std::string_view s, Mismatches& m) {
    check_sequence(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), m);
}

std::string encode(std::uint32_t cp) {
    std::string out;
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return out;
}

}  // namespace

TEST_CASE("utf8: the reference decoder itself") {
    // a few fixed points, so a broken reference cannot make the exhaustive tests vacuous
    CHECK(reference("").valid);
    CHECK(reference("abc").valid);
    CHECK(reference("\xC2\x80").valid);
    CHECK(reference("\xE2\x82\xAC").valid);
    CHECK(reference("\xF0\x9F\x98\x80").valid);
    CHECK(reference("\xF4\x8F\xBF\xBF").valid);
    CHECK(reference("\xED\x9F\xBF").valid);
    CHECK(reference("\xEE\x80\x80").valid);
    CHECK(reference("\xC0\x80").fail_at == 0);
    CHECK(reference("\xC1\xBF").fail_at == 0);
    CHECK(reference("\xE0\x9F\xBF").fail_at == 1);
    CHECK(reference("\xED\xA0\x80").fail_at == 1);
    CHECK(reference("\xF0\x8F\xBF\xBF").fail_at == 1);
    CHECK(reference("\xF4\x90\x80\x80").fail_at == 1);
    CHECK(reference("\xF5\x80\x80\x80").fail_at == 0);
    CHECK(reference("\xE2\x82").fail_at == npos);
    CHECK_FALSE(reference("\xE2\x82").valid);
    CHECK(reference("\xE2\x82" "a").fail_at == 2);
    // every code point encodes to something the reference accepts, except surrogates
    std::size_t wrong = 0;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        const bool expect = cp < 0xD800 || cp > 0xDFFF;
        if (reference(encode(cp)).valid != expect) ++wrong;
    }
    CHECK(wrong == 0);
}

TEST_CASE("utf8: exhaustive 1- and 2-byte sequences") {
    Mismatches m;
    std::size_t valid = 0;
    for (int a = 0; a < 256; ++a) {
        const std::uint8_t s[1] = {static_cast<std::uint8_t>(a)};
        check_sequence(s, 1, m);
        valid += reference(s, 1).valid;
    }
    CHECK(valid == 128);
    valid = 0;
    for (int a = 0; a < 256; ++a) {
        for (int b = 0; b < 256; ++b) {
            const std::uint8_t s[2] = {static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b)};
            check_sequence(s, 2, m);
            valid += reference(s, 2).valid;
            // the same inside ASCII, so the validator's 8-bytes-at-a-time path is crossed
            std::uint8_t wide[18] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', s[0], s[1],
                                     'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p'};
            check_sequence(wide, sizeof wide, m, /*splits=*/(a & 0x0F) == 0);
        }
    }
    CHECK(valid == 128 * 128 + 30 * 64);  // ASCII pairs + C2..DF with a continuation
    INFO("first mismatch: ", m.first);
    CHECK(m.count == 0);
}

TEST_CASE("utf8: exhaustive 3-byte sequences") {
    Mismatches m;
    std::size_t valid3 = 0;  // proper 3-byte sequences (lead E0..EF)
    for (int a = 0; a < 256; ++a) {
        for (int b = 0; b < 256; ++b) {
            for (int c = 0; c < 256; ++c) {
                const std::uint8_t s[3] = {static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b),
                                           static_cast<std::uint8_t>(c)};
                check_sequence(s, 3, m);
                if (a >= 0xE0 && a <= 0xEF && reference(s, 3).valid) ++valid3;
            }
        }
    }
    // U+0800..U+FFFF minus the 2048 surrogates
    CHECK(valid3 == 0x10000 - 0x800 - 0x800);
    INFO("first mismatch: ", m.first);
    CHECK(m.count == 0);
}

TEST_CASE("utf8: 4-byte sequences, every lead F0-FF and second/third byte") {
    // The fourth byte from a representative set (all of them would be 2^32 inputs).
    std::vector<int> fourth;
    if (test_util::kSanitized) fourth = {0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xFF};
    else fourth = {0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F, 0xA0, 0xAA, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    Mismatches m;
    std::size_t valid4 = 0;
    for (int a = 0xF0; a <= 0xFF; ++a) {
        for (int b = 0; b < 256; ++b) {
            for (int c = 0; c < 256; ++c) {
                for (int d : fourth) {
                    const std::uint8_t s[4] = {static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b),
                                               static_cast<std::uint8_t>(c), static_cast<std::uint8_t>(d)};
                    check_sequence(s, 4, m);
                    if (reference(s, 4).valid) ++valid4;
                }
            }
        }
    }
    CHECK(valid4 > 0);
    INFO("first mismatch: ", m.first);
    CHECK(m.count == 0);
}

TEST_CASE("utf8: every 4-byte code point is accepted, in one piece and split") {
    {
        Mismatches all;
        const std::uint32_t step = test_util::kSanitized ? 7 : 1;
        for (std::uint32_t cp = 0x10000; cp <= 0x10FFFF; cp += step) {
            const std::string s = encode(cp);
            const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
            if (!is_valid_utf8(s)) all.add(p, 4, "rejected");
            for (std::size_t c = 1; c < 4; ++c)
                if (!agrees_split(p, 4, c, {true, npos})) all.add(p, 4, "split");
        }
        INFO("first mismatch: ", all.first);
        CHECK(all.count == 0);
    }
}

TEST_CASE("utf8: Markus Kuhn's decoder stress test and Autobahn 6.x cases") {
    struct Case {
        const char* name;
        std::string_view bytes;
        bool valid;
        std::size_t fail_at;  // npos when valid or merely truncated
    };
    using namespace std::string_view_literals;
    const Case cases[] = {
        {"1 kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"sv, true, npos},
        {"empty", ""sv, true, npos},
        {"2.1.1 U+0000", "\x00"sv, true, npos},
        {"2.1.2 U+0080", "\xC2\x80"sv, true, npos},
        {"2.1.3 U+0800", "\xE0\xA0\x80"sv, true, npos},
        {"2.1.4 U+10000", "\xF0\x90\x80\x80"sv, true, npos},
        {"2.1.5 5 bytes", "\xF8\x88\x80\x80\x80"sv, false, 0},
        {"2.1.6 6 bytes", "\xFC\x84\x80\x80\x80\x80"sv, false, 0},
        {"2.2.1 U+007F", "\x7F"sv, true, npos},
        {"2.2.2 U+07FF", "\xDF\xBF"sv, true, npos},
        {"2.2.3 U+FFFF", "\xEF\xBF\xBF"sv, true, npos},
        {"2.2.4 U+1FFFFF", "\xF7\xBF\xBF\xBF"sv, false, 0},
        {"2.3.1 U+D7FF", "\xED\x9F\xBF"sv, true, npos},
        {"2.3.2 U+E000", "\xEE\x80\x80"sv, true, npos},
        {"2.3.3 U+FFFD", "\xEF\xBF\xBD"sv, true, npos},
        {"2.3.4 U+10FFFF", "\xF4\x8F\xBF\xBF"sv, true, npos},
        {"2.3.5 U+110000", "\xF4\x90\x80\x80"sv, false, 1},
        {"3.1.1 first continuation", "\x80"sv, false, 0},
        {"3.1.2 last continuation", "\xBF"sv, false, 0},
        {"3.1.3 2 continuations", "\x80\xBF"sv, false, 0},
        {"3.1.x after ASCII", "abc\x80"sv, false, 3},
        {"3.2.1 lonely 2-byte start", "\xC2 "sv, false, 1},
        {"3.2.2 lonely 3-byte start", "\xE1 "sv, false, 1},
        {"3.2.3 lonely 4-byte start", "\xF1 "sv, false, 1},
        {"3.3.1 2-byte missing last", "\xC2"sv, false, npos},
        {"3.3.2 3-byte missing last", "\xE0\xA0"sv, false, npos},
        {"3.3.3 4-byte missing last", "\xF0\x90\x80"sv, false, npos},
        {"3.3.6 U+07FF missing last", "\xDF"sv, false, npos},
        {"3.3.7 U+FFFF missing last", "\xEF\xBF"sv, false, npos},
        {"3.3.x overlong 3-byte missing last", "\xE0\x80"sv, false, 1},
        {"3.4 concatenated incomplete", "\xC2\xE0\xA0"sv, false, 1},
        {"3.5.1 FE", "\xFE"sv, false, 0},
        {"3.5.2 FF", "\xFF"sv, false, 0},
        {"3.5.3 FE FE FF FF", "\xFE\xFE\xFF\xFF"sv, false, 0},
        {"4.1.1 overlong /", "\xC0\xAF"sv, false, 0},
        {"4.1.2 overlong / 3", "\xE0\x80\xAF"sv, false, 1},
        {"4.1.3 overlong / 4", "\xF0\x80\x80\xAF"sv, false, 1},
        {"4.2.1 max overlong 2", "\xC1\xBF"sv, false, 0},
        {"4.2.2 max overlong 3", "\xE0\x9F\xBF"sv, false, 1},
        {"4.2.3 max overlong 4", "\xF0\x8F\xBF\xBF"sv, false, 1},
        {"4.3.1 overlong NUL 2", "\xC0\x80"sv, false, 0},
        {"4.3.2 overlong NUL 3", "\xE0\x80\x80"sv, false, 1},
        {"5.1.1 U+D800", "\xED\xA0\x80"sv, false, 1},
        {"5.1.5 U+DB80", "\xED\xAE\x80"sv, false, 1},
        {"5.1.7 U+DFFF", "\xED\xBF\xBF"sv, false, 1},
        {"5.2.1 paired surrogates", "\xED\xA0\x80\xED\xB0\x80"sv, false, 1},
        {"5.3.1 U+FFFE", "\xEF\xBF\xBE"sv, true, npos},
        {"5.3.2 U+FDD0", "\xEF\xB7\x90"sv, true, npos},
        {"autobahn 6.3.1 kosme + surrogate",
         "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64"sv, false, 12},
        {"autobahn 6.4.1 fail fast", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80\x65\x64"sv, false,
         12},
        {"autobahn 6.4.3 in ASCII run", "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!"sv,
         true, npos},
        {"long ASCII then a bad byte", "0123456789abcdefghijklmnopqrstuvwxyz\xFF"sv, false, 36},
        {"long ASCII then a truncated sequence", "0123456789abcdefghij\xF0\x9F\x98"sv, false, npos},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        // the table is right according to the reference
        const RefResult ref = reference(c.bytes);
        CHECK(ref.valid == c.valid);
        CHECK(ref.fail_at == c.fail_at);
        // and the validator agrees, in every split
        CHECK(is_valid_utf8(c.bytes) == c.valid);
        Mismatches m;
        check_string(c.bytes, m);
        for (const auto& cuts : test_util::all_splits(c.bytes.size())) {
            Utf8Validator v;
            bool ok = true;
            for (const auto& chunk : test_util::cut(c.bytes, cuts)) ok = v.feed(chunk) && ok;
            if (ok != (c.fail_at == npos) || v.complete() != c.valid) m.add(nullptr, 0, test_util::describe(cuts));
        }
        INFO("first mismatch: ", m.first);
        CHECK(m.count == 0);
    }
}

TEST_CASE("utf8: fail fast, complete(), reset()") {
    SUBCASE("the validator fails at the first bad byte and stays failed") {
        const std::string_view text = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80" "edited";
        Utf8Validator v;
        std::size_t i = 0;
        for (; i < text.size(); ++i)
            if (!v.feed(text.substr(i, 1))) break;
        CHECK(i == 12);
        CHECK(v.failed());
        CHECK_FALSE(v.complete());
        CHECK_FALSE(v.feed("a"));  // stays failed
        CHECK(v.failed());
        v.reset();
        CHECK(v.complete());
        CHECK_FALSE(v.failed());
        CHECK(v.feed("ok"));
        CHECK(v.complete());
    }
    SUBCASE("a truncated sequence is not complete, and completes later") {
        Utf8Validator v;
        CHECK(v.complete());  // nothing fed is valid
        CHECK(v.feed("\xE2\x82"));
        CHECK_FALSE(v.complete());
        CHECK_FALSE(v.failed());
        CHECK(v.feed("\xAC"));
        CHECK(v.complete());
        CHECK(v.feed("\xF0"));
        CHECK_FALSE(v.complete());
        CHECK(v.feed("\x9F\x98"));
        CHECK_FALSE(v.complete());
        CHECK(v.feed("\x80"));
        CHECK(v.complete());
        CHECK_FALSE(is_valid_utf8("\xE2\x82"));
        CHECK_FALSE(is_valid_utf8("abc\xF0\x9F"));
        CHECK(v.feed(std::string_view{}));
        CHECK(v.complete());
    }
    SUBCASE("empty feeds change nothing") {
        Utf8Validator v;
        CHECK(v.feed("\xC3"));
        CHECK(v.feed(nullptr, 0));
        CHECK_FALSE(v.complete());
        CHECK(v.feed("\xA9"));
        CHECK(v.complete());
    }
}

TEST_CASE("utf8: random strings in random pieces") {
    std::mt19937 rng(6455);
    const int rounds = test_util::kSanitized ? 4000 : 40000;
    Mismatches m;
    std::string s;
    for (int round = 0; round < rounds; ++round) {
        s.clear();
        const int parts = static_cast<int>(rng() % 12);
        for (int p = 0; p < parts; ++p) {
            switch (rng() % 8) {
                case 0: s += std::string(rng() % 20, 'x'); break;        // ASCII runs (fast path)
                case 1: s += encode(rng() % 0x80); break;
                case 2: s += encode(0x80 + rng() % (0x800 - 0x80)); break;
                case 3: {
                    std::uint32_t cp = 0x800 + rng() % (0x10000 - 0x800);
                    if (cp >= 0xD800 && cp <= 0xDFFF) cp -= 0x800;
                    s += encode(cp);
                    break;
                }
                case 4:
                case 5: s += encode(0x10000 + rng() % 0x100000); break;
                case 6:
                    if (rng() % 4 == 0) s += static_cast<char>(rng() & 0xFF);  // sometimes a random byte
                    else s += encode(0x80 + rng() % 0x1000);
                    break;
                default: {
                    const std::string e = encode(0x800 + rng() % 0x10F800);
                    s += e.substr(0, rng() % (e.size() + 1));  // sometimes truncated
                    break;
                }
            }
        }
        const RefResult ref = reference(s);
        check_string(s, m);
        // three random pieces
        if (!s.empty()) {
            std::size_t a = rng() % s.size();
            std::size_t b = rng() % s.size();
            if (a > b) std::swap(a, b);
            Utf8Validator v;
            bool ok = v.feed(std::string_view(s).substr(0, a));
            ok = v.feed(std::string_view(s).substr(a, b - a)) && ok;
            ok = v.feed(std::string_view(s).substr(b)) && ok;
            if (ok != (ref.fail_at == npos) || v.complete() != ref.valid)
                m.add(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), "three pieces");
        }
    }
    INFO("first mismatch: ", m.first);
    CHECK(m.count == 0);
}
