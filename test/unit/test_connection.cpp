// websock::Connection: message reassembly, sequencing, UTF-8, limits, pings, the close
// handshake. Driven as a server with masked client frames, fed in every split.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "test/unit/test_util.hpp"
#include "websock/codec/frame.hpp"
#include "websock/connection.hpp"

using namespace websock;
using namespace websock::codec;
using test_util::bytes;
using test_util::hex;

namespace {

/// Records every callback as one line of text.
struct Recorder final : ConnectionHandler {
    std::vector<std::string> events;
    void on_message(std::string_view data, MessageType type) override {
        events.push_back(std::string(type == MessageType::Text ? "text:" : "binary:") + std::string(data));
    }
    void on_ping(std::string_view payload) override { events.push_back("ping:" + std::string(payload)); }
    void on_pong(std::string_view payload) override { events.push_back("pong:" + std::string(payload)); }
    void on_peer_close(CloseCode code, std::string_view reason) override {
        events.push_back("close:" + std::to_string(static_cast<int>(code)) + ":" + std::string(reason));
    }
};

/// A frame as the server sent it (decoded from output()).
struct SentFrame {
    Opcode opcode;
    bool fin;
    std::string payload;
    int close_code() const {
        if (opcode != Opcode::Close || payload.size() < 2) return -1;
        return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
    }
};

struct FrameCollector {
    std::vector<SentFrame> frames;
    bool on_frame_header(const FrameHeader& h) {
        frames.push_back({h.opcode, h.fin, {}});
        return true;
    }
    bool on_frame_payload(std::uint8_t* d, std::size_t n) {
        frames.back().payload.append(reinterpret_cast<const char*>(d), n);
        return true;
    }
    bool on_frame_end(const FrameHeader&) { return true; }
};

/// Decode what a connection wrote, as its peer would. `role` is the reader's role.
std::vector<SentFrame> decode_output(std::string output, Role reader = Role::Client) {
    FrameDecoder decoder({reader, 0, 1ull << 40});
    FrameCollector c;
    auto r = decoder.feed(reinterpret_cast<std::uint8_t*>(output.data()), output.size(), c);
    CHECK_FALSE(r.failed);
    CHECK(r.consumed == output.size());
    CHECK(decoder.at_frame_boundary());
    return c.frames;
}

std::uint8_t g_mask_seed = 0;

/// A masked client frame (a different mask each time, some of them zero).
std::string frame(Opcode op, bool fin, std::string_view payload, std::uint8_t rsv = 0) {
    const std::uint8_t s = g_mask_seed++;
    std::uint8_t mask[4] = {static_cast<std::uint8_t>(s * 37 + 1), static_cast<std::uint8_t>(s * 11),
                            static_cast<std::uint8_t>(0xA5 ^ s), static_cast<std::uint8_t>(s % 3 == 0 ? 0 : 0x5C)};
    std::string out;
    append_frame(out, op, fin, payload, mask, rsv);
    return out;
}
std::string text(std::string_view p, bool fin = true) { return frame(Opcode::Text, fin, p); }
std::string binary(std::string_view p, bool fin = true) { return frame(Opcode::Binary, fin, p); }
std::string cont(std::string_view p, bool fin) { return frame(Opcode::Continuation, fin, p); }
std::string ping(std::string_view p) { return frame(Opcode::Ping, true, p); }
std::string pong(std::string_view p) { return frame(Opcode::Pong, true, p); }
std::string close_frame(std::string_view payload) { return frame(Opcode::Close, true, payload); }
std::string close_payload(int code, std::string_view reason = {}) {
    return bytes({(code >> 8) & 0xFF, code & 0xFF}) + std::string(reason);
}

struct Outcome {
    std::vector<std::string> events;
    std::vector<SentFrame> sent;
    Connection::State state = Connection::State::Open;
    bool failed = false;
    bool close_sent = false;
    bool close_received = false;
    int close_code = 0;
    std::size_t consumed = 0;
};

std::string summary(const Outcome& o) {
    std::string s = "events:";
    for (const auto& e : o.events) s += " [" + hex(e, 40) + "]";
    s += " sent:";
    for (const auto& f : o.sent)
        s += " [op=" + std::to_string(static_cast<int>(f.opcode)) + (f.fin ? " fin " : " ") + hex(f.payload, 40) + "]";
    s += " state=" + std::to_string(static_cast<int>(o.state)) + " failed=" + std::to_string(o.failed) +
         " close_sent=" + std::to_string(o.close_sent) + " close_received=" + std::to_string(o.close_received) +
         " code=" + std::to_string(o.close_code);
    // how much of the input a failed connection reports as consumed depends on the split
    if (!o.failed) s += " consumed=" + std::to_string(o.consumed);
    return s;
}

/// Feed `input` cut at `cuts`. Each chunk lives in its own heap buffer that is scribbled
/// over and freed after feed(), as a server's read buffer would be reused: the connection
/// must not keep pointers into it.
Outcome run(std::string_view input, const std::vector<std::size_t>& cuts, ConnectionOptions options = {}) {
    Connection conn(options);
    Recorder rec;
    Outcome o;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t end = i < cuts.size() ? cuts[i] : input.size();
        const std::size_t n = end - start;
        auto chunk = std::make_unique<std::uint8_t[]>(n + 1);
        std::memcpy(chunk.get(), input.data() + start, n);
        const bool was_closed = conn.state() == Connection::State::Closed;
        const std::size_t used = conn.feed(chunk.get(), n, rec);
        std::memset(chunk.get(), 0xEE, n + 1);
        if (was_closed) CHECK(used == 0);
        else if (conn.state() != Connection::State::Closed) CHECK(used == n);  // everything, unless it closed
        CHECK(used <= n);
        o.consumed += used;
        start = end;
    }
    o.events = std::move(rec.events);
    o.sent = decode_output(conn.output());
    o.state = conn.state();
    o.failed = conn.failed();
    o.close_sent = conn.close_sent();
    o.close_received = conn.close_received();
    o.close_code = static_cast<int>(conn.close_code());
    return o;
}

/// Run every split of `input` and check each gives what the unsplit run gave.
Outcome run_all_splits(std::string_view input, ConnectionOptions options = {}, std::size_t pair_limit = 24) {
    const Outcome whole = run(input, {}, options);
    const std::string expected = summary(whole);
    for (const auto& cuts : test_util::all_splits(input.size(), pair_limit)) {
        const std::string got = summary(run(input, cuts, options));
        if (got != expected) {
            INFO("split: ", test_util::describe(cuts));
            CHECK(got == expected);
            break;
        }
    }
    return whole;
}

/// Expect the connection to have failed with `code`: a close frame with it is the last thing
/// sent, the state is Closed and no close was received.
void expect_failed(const Outcome& o, int code) {
    CHECK(o.state == Connection::State::Closed);
    CHECK(o.failed);
    CHECK(o.close_sent);
    CHECK_FALSE(o.close_received);
    CHECK(o.close_code == code);
    REQUIRE_FALSE(o.sent.empty());
    CHECK(o.sent.back().opcode == Opcode::Close);
    CHECK(o.sent.back().close_code() == code);
    CHECK(o.sent.back().payload.size() <= kMaxControlPayload);
    for (const auto& e : o.events) CHECK(e.rfind("close:", 0) != 0);  // no peer close reported
}

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

}  // namespace

TEST_CASE("connection: messages") {
    SUBCASE("text") {
        const Outcome o = run_all_splits(text("Hello \xE2\x82\xAC"));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "text:Hello \xE2\x82\xAC");
        CHECK(o.sent.empty());
        CHECK(o.state == Connection::State::Open);
        CHECK_FALSE(o.failed);
    }
    SUBCASE("binary, with bytes that are not UTF-8") {
        const std::string payload = bytes({0x00, 0xFF, 0xC0, 0x80, 0xED, 0xA0, 0x80});
        const Outcome o = run_all_splits(binary(payload));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "binary:" + payload);
        CHECK_FALSE(o.failed);
    }
    SUBCASE("empty messages") {
        const Outcome o = run_all_splits(text("") + binary("") + text("", false) + cont("", false) + cont("", true));
        REQUIRE(o.events.size() == 3);
        CHECK(o.events[0] == "text:");
        CHECK(o.events[1] == "binary:");
        CHECK(o.events[2] == "text:");
    }
    SUBCASE("several messages in one buffer") {
        const Outcome o = run_all_splits(text("one") + binary("two") + text("three"));
        REQUIRE(o.events.size() == 3);
        CHECK(o.events[0] == "text:one");
        CHECK(o.events[1] == "binary:two");
        CHECK(o.events[2] == "text:three");
    }
    SUBCASE("a larger message (16-bit length), split at every point") {
        const std::string payload = repeat("0123456789abcdef", 20);  // 320 bytes
        const Outcome o = run_all_splits(text(payload));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "text:" + payload);
    }
    SUBCASE("a 70000-byte message (64-bit length)") {
        std::string payload(70000, 'x');
        for (std::size_t i = 0; i < payload.size(); i += 7) payload[i] = static_cast<char>('a' + i % 26);
        const std::string input = binary(payload);
        for (const std::vector<std::size_t>& cuts : {std::vector<std::size_t>{}, {1}, {2}, {9}, {10}, {13}, {14},
                                                     {15}, {4000, 4001, 60000}, {70013}}) {
            CAPTURE(test_util::describe(cuts));
            const Outcome o = run(input, cuts);
            REQUIRE(o.events.size() == 1);
            CHECK(o.events[0] == "binary:" + payload);
        }
    }
    SUBCASE("fragmented, with pings interleaved: pongs carry the same payload") {
        const std::string input = text("Hel", false) + ping("p1") + cont("lo", false) + ping("") +
                                  cont(" w\xC3", false) + pong("unsolicited") + cont("\xA9rld", true);
        const Outcome o = run_all_splits(input, {}, 12);
        REQUIRE(o.events.size() == 4);
        CHECK(o.events[0] == "ping:p1");
        CHECK(o.events[1] == "ping:");
        CHECK(o.events[2] == "pong:unsolicited");
        CHECK(o.events[3] == "text:Hello w\xC3\xA9rld");
        REQUIRE(o.sent.size() == 2);
        CHECK(o.sent[0].opcode == Opcode::Pong);
        CHECK(o.sent[0].fin);
        CHECK(o.sent[0].payload == "p1");
        CHECK(o.sent[1].opcode == Opcode::Pong);
        CHECK(o.sent[1].payload.empty());
        CHECK(o.state == Connection::State::Open);
    }
    SUBCASE("a 125-byte ping is answered with the same 125 bytes") {
        std::string payload;
        for (int i = 0; i < 125; ++i) payload.push_back(static_cast<char>(i * 3));
        const Outcome o = run_all_splits(ping(payload));
        REQUIRE(o.sent.size() == 1);
        CHECK(o.sent[0].opcode == Opcode::Pong);
        CHECK(o.sent[0].payload == payload);
    }
    SUBCASE("fragmented binary") {
        const Outcome o = run_all_splits(binary("\x01\x02", false) + cont("", false) + cont("\x03", true));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == std::string("binary:\x01\x02\x03"));
    }
    SUBCASE("auto_pong off: the ping is reported, not answered") {
        ConnectionOptions options;
        options.auto_pong = false;
        const Outcome o = run_all_splits(ping("x"), options);
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "ping:x");
        CHECK(o.sent.empty());
    }
}

TEST_CASE("connection: sequencing errors -> 1002") {
    SUBCASE("continuation without a start") {
        const Outcome o = run_all_splits(cont("x", true) + text("after"));
        expect_failed(o, 1002);
        CHECK(o.events.empty());
        CHECK(o.sent.size() == 1);
    }
    SUBCASE("continuation after a finished message") {
        const Outcome o = run_all_splits(text("done") + cont("x", false));
        REQUIRE_FALSE(o.events.empty());
        CHECK(o.events[0] == "text:done");
        CHECK(o.events.size() == 1);
        expect_failed(o, 1002);
    }
    SUBCASE("a new data frame during a fragmented message") {
        for (const auto& second : {text("b"), binary("b"), text("b", false)}) {
            const Outcome o = run_all_splits(text("a", false) + second);
            CHECK(o.events.empty());
            expect_failed(o, 1002);
        }
    }
    SUBCASE("an unmasked client frame") {
        std::string unmasked;
        append_frame(unmasked, Opcode::Text, true, "Hello");
        const Outcome o = run_all_splits(text("ok") + unmasked);
        REQUIRE(o.events.size() == 1);
        expect_failed(o, 1002);
    }
    SUBCASE("frame-level errors from the decoder") {
        expect_failed(run_all_splits(frame(Opcode::Text, true, "x", kRsv1)), 1002);    // RSV without extension
        expect_failed(run_all_splits(bytes({0x83, 0x80, 1, 2, 3, 4})), 1002);          // reserved opcode
        expect_failed(run_all_splits(frame(Opcode::Ping, false, "x")), 1002);           // fragmented control
        expect_failed(run_all_splits(frame(Opcode::Ping, true, std::string(126, 'p'))), 1002);  // long control
    }
    SUBCASE("RSV1 allowed after an extension was negotiated") {
        Connection conn({});
        conn.set_allowed_rsv(kRsv1);
        Recorder rec;
        std::string input = frame(Opcode::Binary, true, "x", kRsv1);
        conn.feed(input, rec);
        CHECK_FALSE(conn.failed());
        REQUIRE(rec.events.size() == 1);
    }
}

TEST_CASE("connection: UTF-8 -> 1007") {
    SUBCASE("invalid UTF-8 in a single frame") {
        for (const std::string& bad : {std::string("\xFF"), std::string("abc\xC0\xAF"), std::string("\xED\xA0\x80"),
                                      std::string("\xF4\x90\x80\x80"), std::string("ok\x80")}) {
            CAPTURE(hex(bad));
            const Outcome o = run_all_splits(text(bad));
            CHECK(o.events.empty());
            expect_failed(o, 1007);
        }
    }
    SUBCASE("a text message that ends inside a sequence") {
        const Outcome o = run_all_splits(text("abc\xE2\x82"));
        CHECK(o.events.empty());
        expect_failed(o, 1007);
        const Outcome f = run_all_splits(text("abc\xE2", false) + cont("\x82", true));
        CHECK(f.events.empty());
        expect_failed(f, 1007);
    }
    SUBCASE("a sequence split across fragments is fine") {
        const Outcome o = run_all_splits(text("\xF0", false) + cont("\x9F\x98", false) + cont("\x80", true));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "text:\xF0\x9F\x98\x80");
    }
    SUBCASE("fails at the fragment with the bad byte, before the final fragment arrives") {
        const std::string first = text("\xCE\xBA\xE1\xBD\xB9", false);
        const std::string second = cont("\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80" "edited", false);
        const std::string last = cont("more", true);
        // fed one fragment at a time: closed right after the second
        Connection conn({});
        Recorder rec;
        std::string a = first, b = second, c = last;
        CHECK(conn.feed(a, rec) == first.size());
        CHECK(conn.state() == Connection::State::Open);
        conn.feed(b, rec);
        CHECK(conn.state() == Connection::State::Closed);
        CHECK(conn.failed());
        CHECK(conn.close_code() == CloseCode::InvalidPayload);
        CHECK(conn.feed(c, rec) == 0);
        CHECK(rec.events.empty());
        const auto sent = decode_output(conn.output());
        REQUIRE(sent.size() == 1);
        CHECK(sent[0].close_code() == 1007);
        // fed byte by byte: it fails at the bad byte itself (fail fast), not at the frame end
        Connection bytewise({});
        Recorder rec2;
        std::string all = first + second + last;
        const std::size_t header = second.size() - 15;  // 2-byte header + 4-byte mask
        const std::size_t bad_byte = first.size() + header + 7;  // the 0xA0 after 0xED
        std::size_t fed = 0;
        for (; fed < all.size(); ++fed) {
            bytewise.feed(reinterpret_cast<std::uint8_t*>(all.data()) + fed, 1, rec2);
            if (bytewise.state() == Connection::State::Closed) break;
        }
        CHECK(fed == bad_byte);
        CHECK(bytewise.close_code() == CloseCode::InvalidPayload);
        // and in every split
        const Outcome o = run_all_splits(all, {}, 0);
        CHECK(o.events.empty());
        expect_failed(o, 1007);
    }
    SUBCASE("an invalid byte in a later fragment of a long message fails before its end") {
        std::string input = text(std::string(100, 'a'), false) + cont(std::string(100, 'b'), false) +
                            cont(std::string(50, 'c') + "\xFF" + std::string(49, 'c'), false);
        Connection conn({});
        Recorder rec;
        conn.feed(input, rec);
        CHECK(conn.state() == Connection::State::Closed);
        CHECK(conn.close_code() == CloseCode::InvalidPayload);
    }
}

TEST_CASE("connection: size limits -> 1009") {
    ConnectionOptions options;
    options.max_message_bytes = 10;
    SUBCASE("one frame over max_message_bytes") {
        const Outcome o = run_all_splits(text("0123456789A"), options);
        CHECK(o.events.empty());
        expect_failed(o, 1009);
        const Outcome ok = run_all_splits(text("0123456789"), options);
        REQUIRE(ok.events.size() == 1);
        CHECK_FALSE(ok.failed);
    }
    SUBCASE("fragments adding up to more than max_message_bytes") {
        const Outcome o = run_all_splits(binary("012345", false) + cont("6789", false) + cont("A", true), options);
        CHECK(o.events.empty());
        expect_failed(o, 1009);
        const Outcome ok = run_all_splits(binary("012345", false) + cont("6789", false) + cont("", true), options);
        REQUIRE(ok.events.size() == 1);
        CHECK(ok.events[0] == "binary:0123456789");
    }
    SUBCASE("the limit applies per message") {
        const Outcome o = run_all_splits(text("0123456789") + text("0123456789") + binary("0123456789"), options);
        CHECK(o.events.size() == 3);
        CHECK_FALSE(o.failed);
    }
    SUBCASE("control frames do not count") {
        const Outcome o = run_all_splits(text("01234", false) + ping("0123456789xyz") + cont("56789", true), options);
        REQUIRE(o.events.size() == 2);
        CHECK(o.events[1] == "text:0123456789");
        CHECK_FALSE(o.failed);
    }
    SUBCASE("max_frame_bytes") {
        ConnectionOptions frame_limit;
        frame_limit.max_frame_bytes = 4;
        const Outcome o = run_all_splits(text("abcde"), frame_limit);
        expect_failed(o, 1009);
        const Outcome ok = run_all_splits(text("abc", false) + cont("defg", true), frame_limit);
        REQUIRE(ok.events.size() == 1);
        CHECK(ok.events[0] == "text:abcdefg");
    }
}

TEST_CASE("connection: the close handshake") {
    SUBCASE("close 1000 with a reason: echoed with the same code, then Closed") {
        const Outcome o = run_all_splits(close_frame(close_payload(1000, "bye")));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "close:1000:bye");
        REQUIRE(o.sent.size() == 1);
        CHECK(o.sent[0].opcode == Opcode::Close);
        CHECK(o.sent[0].close_code() == 1000);
        CHECK(o.state == Connection::State::Closed);
        CHECK(o.close_received);
        CHECK(o.close_sent);
        CHECK_FALSE(o.failed);
        CHECK(o.close_code == 1000);
    }
    SUBCASE("other valid codes are echoed") {
        for (int code : {1001, 1003, 1007, 1011, 1014, 3000, 4999}) {
            CAPTURE(code);
            const Outcome o = run(close_frame(close_payload(code, "r")), {});
            REQUIRE(o.sent.size() == 1);
            CHECK(o.sent[0].close_code() == code);
            CHECK_FALSE(o.failed);
        }
    }
    SUBCASE("an empty close: answered with an empty close") {
        const Outcome o = run_all_splits(close_frame(""));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "close:1005:");
        REQUIRE(o.sent.size() == 1);
        CHECK(o.sent[0].opcode == Opcode::Close);
        CHECK(o.sent[0].payload.empty());
        CHECK(o.state == Connection::State::Closed);
        CHECK_FALSE(o.failed);
    }
    SUBCASE("a close with a 1-byte payload -> 1002") {
        expect_failed(run_all_splits(close_frame("\x03")), 1002);
    }
    SUBCASE("close codes that may not be sent -> 1002") {
        for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
            CAPTURE(code);
            expect_failed(run_all_splits(close_frame(close_payload(code))), 1002);
        }
    }
    SUBCASE("a close reason that is not UTF-8 -> 1007") {
        expect_failed(run_all_splits(close_frame(close_payload(1000, "bad \xFF"))), 1007);
        expect_failed(run_all_splits(close_frame(close_payload(1000, "cut \xE2\x82"))), 1007);
    }
    SUBCASE("data after a close frame is ignored") {
        const std::string closing = close_frame(close_payload(1000));
        const std::string input = text("before") + closing + text("after") + ping("p");
        const Outcome o = run_all_splits(input);
        REQUIRE(o.events.size() == 2);
        CHECK(o.events[0] == "text:before");
        CHECK(o.events[1] == "close:1000:");
        REQUIRE(o.sent.size() == 1);  // no pong
        CHECK(o.sent[0].opcode == Opcode::Close);
        CHECK(o.consumed == text("before").size() + closing.size());
        CHECK(o.state == Connection::State::Closed);
    }
    SUBCASE("a close in the middle of a fragmented message") {
        const Outcome o = run_all_splits(text("par", false) + close_frame(close_payload(1001)) + cont("t", true));
        REQUIRE(o.events.size() == 1);
        CHECK(o.events[0] == "close:1001:");
        CHECK(o.state == Connection::State::Closed);
    }
    SUBCASE("we close first, the peer answers") {
        Connection conn({});
        Recorder rec;
        conn.close(CloseCode::GoingAway, "shutting down");
        CHECK(conn.state() == Connection::State::Closing);
        CHECK(conn.close_sent());
        CHECK_FALSE(conn.send_message("late", MessageType::Text));
        CHECK_FALSE(conn.send_ping("p"));
        conn.close(CloseCode::Normal);  // a second call does nothing
        auto sent = decode_output(conn.output());
        REQUIRE(sent.size() == 1);
        CHECK(sent[0].close_code() == 1001);
        CHECK(sent[0].payload.substr(2) == "shutting down");
        conn.output().clear();
        // the peer may still send data before its close; a ping is not answered any more
        std::string input = text("still here") + ping("p") + close_frame(close_payload(1001)) + text("ignored");
        conn.feed(input, rec);
        REQUIRE(rec.events.size() == 3);
        CHECK(rec.events[0] == "text:still here");
        CHECK(rec.events[1] == "ping:p");
        CHECK(rec.events[2] == "close:1001:");
        CHECK(conn.state() == Connection::State::Closed);
        CHECK(conn.output().empty());  // no second close frame, no pong
        CHECK_FALSE(conn.failed());
    }
    SUBCASE("fail() sends one close and stops input") {
        Connection conn({});
        Recorder rec;
        conn.fail(CloseCode::PolicyViolation, "no");
        CHECK(conn.state() == Connection::State::Closed);
        CHECK(conn.failed());
        std::string input = text("x");
        CHECK(conn.feed(input, rec) == 0);
        CHECK(rec.events.empty());
        auto sent = decode_output(conn.output());
        REQUIRE(sent.size() == 1);
        CHECK(sent[0].close_code() == 1008);
        conn.fail(CloseCode::ProtocolError, "again");
        CHECK(decode_output(conn.output()).size() == 1);
    }
}

TEST_CASE("connection: sending") {
    SUBCASE("server frames are unmasked") {
        Connection conn({});
        CHECK(conn.send_message("hi", MessageType::Text));
        CHECK(conn.send_message(std::string(300, 'b'), MessageType::Binary));
        CHECK(conn.send_ping("p"));
        CHECK(conn.send_pong("q"));
        CHECK_FALSE(conn.send_ping(std::string(126, 'x')));
        auto sent = decode_output(conn.output(), Role::Client);  // a client decoder rejects masked frames
        REQUIRE(sent.size() == 4);
        CHECK(sent[0].opcode == Opcode::Text);
        CHECK(sent[0].payload == "hi");
        CHECK(sent[1].opcode == Opcode::Binary);
        CHECK(sent[1].payload == std::string(300, 'b'));
        CHECK(sent[2].opcode == Opcode::Ping);
        CHECK(sent[3].opcode == Opcode::Pong);
    }
    SUBCASE("send_fragmented") {
        Connection conn({});
        CHECK(conn.send_fragmented("Hello", MessageType::Text, 2));
        auto sent = decode_output(conn.output());
        REQUIRE(sent.size() == 3);
        CHECK(sent[0].opcode == Opcode::Text);
        CHECK_FALSE(sent[0].fin);
        CHECK(sent[0].payload == "He");
        CHECK(sent[1].opcode == Opcode::Continuation);
        CHECK_FALSE(sent[1].fin);
        CHECK(sent[2].opcode == Opcode::Continuation);
        CHECK(sent[2].fin);
        CHECK(sent[2].payload == "o");
        conn.output().clear();
        CHECK(conn.send_fragmented("", MessageType::Binary, 4));
        sent = decode_output(conn.output());
        REQUIRE(sent.size() == 1);
        CHECK(sent[0].fin);
        CHECK(sent[0].opcode == Opcode::Binary);
    }
    SUBCASE("a client's frames are masked, and a server connection reads them back") {
        ConnectionOptions client_options;
        client_options.role = Role::Client;
        Connection client(client_options);
        CHECK(client.send_fragmented("fragmented text", MessageType::Text, 4));
        CHECK(client.send_ping("p"));
        CHECK(client.send_message("bin", MessageType::Binary));
        client.close(CloseCode::Normal, "done");
        const auto sent = decode_output(client.output(), Role::Server);  // a server decoder requires masks
        CHECK(sent.size() == 7);
        const Outcome o = run_all_splits(client.output(), {}, 0);
        REQUIRE(o.events.size() == 4);
        CHECK(o.events[0] == "text:fragmented text");
        CHECK(o.events[1] == "ping:p");
        CHECK(o.events[2] == "binary:bin");
        CHECK(o.events[3] == "close:1000:done");
    }
    SUBCASE("a client connection rejects masked server frames") {
        ConnectionOptions client_options;
        client_options.role = Role::Client;
        Connection client(client_options);
        Recorder rec;
        std::string input = text("masked");
        client.feed(input, rec);
        CHECK(client.failed());
        CHECK(client.close_code() == CloseCode::ProtocolError);
        std::string plain;
        append_frame(plain, Opcode::Text, true, "plain");
        Connection client2(client_options);
        client2.feed(plain, rec);
        CHECK_FALSE(client2.failed());
        REQUIRE(rec.events.size() == 1);
        CHECK(rec.events[0] == "text:plain");
    }
}
