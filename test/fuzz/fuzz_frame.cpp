// libFuzzer target: the frame decoder and websock::Connection (server role).
//
// Input: [flags][seed lo][seed hi] then the bytes a client sent. The flags pick limits and
// options; the seed picks where the stream is cut. Oracles:
//  - the raw FrameDecoder (both roles) reports the same frames, payloads and error for the
//    whole stream and for the cut stream, in a legal callback order;
//  - Connection gives the same messages, callbacks, output bytes and final state whole and
//    cut; every text message is valid UTF-8 (independent reference) and within the limit;
//    what it wrote decodes as unmasked server frames with at most one close frame, last.
#include <cstring>
#include <string>
#include <vector>

#include "test/fuzz/fuzz_common.hpp"
#include "test/unit/utf8_reference.hpp"
#include "websock/codec/close.hpp"
#include "websock/codec/frame.hpp"
#include "websock/connection.hpp"

using namespace websock;
using namespace websock::codec;

namespace {

// ---- the raw decoder ---------------------------------------------------------------------

struct DecoderLog {
    std::string log;  // every event, payload bytes concatenated per frame
    bool in_frame = false;
    std::uint64_t expected = 0;
    std::uint64_t got = 0;

    bool on_frame_header(const FrameHeader& h) {
        FUZZ_CHECK(!in_frame);
        in_frame = true;
        expected = h.payload_length;
        got = 0;
        FUZZ_CHECK((h.payload_length >> 63) == 0);
        if (is_control(h.opcode)) FUZZ_CHECK(h.fin && h.payload_length <= kMaxControlPayload);
        log += "H" + std::to_string(static_cast<int>(h.opcode)) + "," + std::to_string(h.fin) + "," +
               std::to_string(h.rsv) + "," + std::to_string(h.payload_length) + ":";
        return true;
    }
    bool on_frame_payload(std::uint8_t* data, std::size_t n) {
        FUZZ_CHECK(in_frame);
        FUZZ_CHECK(n > 0);
        got += n;
        FUZZ_CHECK(got <= expected);
        log.append(reinterpret_cast<const char*>(data), n);
        return true;
    }
    bool on_frame_end(const FrameHeader& h) {
        FUZZ_CHECK(in_frame);
        FUZZ_CHECK(got == expected);
        FUZZ_CHECK(h.payload_length == expected);
        in_frame = false;
        log += ";E";
        return true;
    }
};

std::string run_decoder(const std::uint8_t* data, std::size_t size, const std::vector<std::size_t>* chunks,
                        FrameDecoder::Options options) {
    std::vector<std::uint8_t> buffer(data, data + size);  // unmasked in place
    FrameDecoder decoder(options);
    DecoderLog log;
    std::size_t pos = 0;
    bool failed = false;
    auto feed = [&](std::size_t n) {
        auto r = decoder.feed(buffer.data() + pos, n, log);
        FUZZ_CHECK(!r.stopped);
        FUZZ_CHECK(r.consumed <= n);
        if (r.failed) {
            failed = true;
            FUZZ_CHECK(decoder.error().code == CloseCode::ProtocolError ||
                       decoder.error().code == CloseCode::MessageTooBig);
        } else {
            FUZZ_CHECK(r.consumed == n);
        }
        pos += n;
    };
    if (chunks) {
        for (std::size_t n : *chunks) {
            if (failed) break;
            feed(n);
        }
    } else {
        feed(size);
    }
    if (failed) log.log += "|FAILED " + std::to_string(static_cast<int>(decoder.error().code));
    else if (decoder.at_frame_boundary()) log.log += "|boundary";
    return log.log;
}

// ---- the connection ----------------------------------------------------------------------

struct Recorder final : ConnectionHandler {
    std::string log;
    std::size_t max_message = 0;
    void on_message(std::string_view data, MessageType type) override {
        FUZZ_CHECK(data.size() <= max_message);
        if (type == MessageType::Text) {
            FUZZ_CHECK(utf8_reference::check(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()).valid);
        }
        log += type == MessageType::Text ? "T" : "B";
        log += std::to_string(data.size()) + ":";
        log.append(data);
        log += ";";
    }
    void on_ping(std::string_view p) override {
        FUZZ_CHECK(p.size() <= kMaxControlPayload);
        log += "ping:" + std::string(p) + ";";
    }
    void on_pong(std::string_view p) override {
        FUZZ_CHECK(p.size() <= kMaxControlPayload);
        log += "pong:" + std::string(p) + ";";
    }
    void on_peer_close(CloseCode code, std::string_view reason) override {
        const auto c = static_cast<std::uint16_t>(code);
        FUZZ_CHECK(code == CloseCode::NoStatus || is_valid_close_code(c));
        FUZZ_CHECK(utf8_reference::check(reinterpret_cast<const std::uint8_t*>(reason.data()), reason.size()).valid);
        log += "close:" + std::to_string(c) + ":" + std::string(reason) + ";";
    }
};

/// What a server wrote must be valid unmasked frames, with at most one close, last.
struct OutputCheck {
    int closes = 0;
    bool after_close = false;
    bool on_frame_header(const FrameHeader& h) {
        FUZZ_CHECK(!after_close);
        FUZZ_CHECK(!h.masked);
        if (h.opcode == Opcode::Close) {
            ++closes;
            after_close = true;
        }
        return true;
    }
    std::string close_payload;
    bool on_frame_payload(std::uint8_t* d, std::size_t n) {
        if (after_close) close_payload.append(reinterpret_cast<const char*>(d), n);
        return true;
    }
    bool on_frame_end(const FrameHeader&) { return true; }
};

std::string run_connection(const std::uint8_t* data, std::size_t size, const std::vector<std::size_t>* chunks,
                           const ConnectionOptions& options, std::uint8_t allowed_rsv) {
    Connection conn(options);
    conn.set_allowed_rsv(allowed_rsv);
    Recorder rec;
    rec.max_message = options.max_message_bytes;
    std::size_t pos = 0;
    auto feed = [&](std::size_t n) {
        // a fresh buffer per read, scribbled over afterwards like a reused read buffer
        std::vector<std::uint8_t> chunk(data + pos, data + pos + n);
        const bool was_closed = conn.state() == Connection::State::Closed;
        const std::size_t used = conn.feed(chunk.data(), chunk.size(), rec);
        FUZZ_CHECK(used <= n);
        if (was_closed) FUZZ_CHECK(used == 0);
        if (conn.state() == Connection::State::Open) FUZZ_CHECK(used == n);
        if (n > 0) std::memset(chunk.data(), 0xA5, chunk.size());
        pos += n;
    };
    if (chunks) {
        for (std::size_t n : *chunks) feed(n);
    } else {
        feed(size);
    }
    // the output, as a client reads it
    std::string out = conn.output();
    FrameDecoder reader({Role::Client, 0, 1ull << 40});
    OutputCheck check;
    auto r = reader.feed(reinterpret_cast<std::uint8_t*>(out.data()), out.size(), check);
    FUZZ_CHECK(!r.failed);
    FUZZ_CHECK(r.consumed == out.size());
    FUZZ_CHECK(reader.at_frame_boundary());
    FUZZ_CHECK(check.closes <= 1);
    FUZZ_CHECK(conn.close_sent() == (check.closes == 1));
    if (check.closes == 1 && !check.close_payload.empty()) {
        ClosePayload parsed;
        ClosePayloadError error{};
        FUZZ_CHECK(parse_close_payload(check.close_payload, parsed, error));
    }
    if (conn.failed()) {
        FUZZ_CHECK(conn.state() == Connection::State::Closed);
        FUZZ_CHECK(conn.close_sent());
    }
    if (conn.close_received()) FUZZ_CHECK(conn.state() == Connection::State::Closed);
    return rec.log + "|out=" + conn.output() + "|state=" + std::to_string(static_cast<int>(conn.state())) +
           " failed=" + std::to_string(conn.failed()) + " code=" + std::to_string(static_cast<int>(conn.close_code())) +
           " sent=" + std::to_string(conn.close_sent()) + " received=" + std::to_string(conn.close_received());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::uint8_t flags = data[0];
    const std::uint32_t seed = data[1] | (data[2] << 8);
    data += 3;
    size -= 3;
    const auto chunks = fuzz::chunk_sizes(size, seed);

    // the decoder alone, both roles
    std::uint64_t max_frame = (flags & 0x04) ? 16 + (flags >> 4) * 8 : 1 << 20;
    const std::uint8_t allowed_rsv = (flags & 0x08) ? kRsv1 : 0;
    for (Role role : {Role::Server, Role::Client}) {
        const FrameDecoder::Options options{role, allowed_rsv, max_frame};
        const std::string whole = run_decoder(data, size, nullptr, options);
        const std::string cut = run_decoder(data, size, &chunks, options);
        FUZZ_CHECK_EQ(whole, cut);
    }

    // the connection, as a server
    ConnectionOptions options;
    options.role = Role::Server;
    options.max_frame_bytes = static_cast<std::size_t>(max_frame);
    options.max_message_bytes = (flags & 0x01) ? 8 + (flags >> 4) * 16 : 1 << 20;
    options.auto_pong = (flags & 0x02) == 0;
    const std::string whole = run_connection(data, size, nullptr, options, allowed_rsv);
    const std::string cut = run_connection(data, size, &chunks, options, allowed_rsv);
    FUZZ_CHECK_EQ(whole, cut);
    return 0;
}
