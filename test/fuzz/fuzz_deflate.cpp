// libFuzzer target: permessage-deflate (RFC 7692). The first byte picks one of three parts:
//
//   0  header: [server options][client options] then a Sec-WebSocket-Extensions value.
//      parse_extensions never crashes and reports errors inside the value; a parsed list
//      serializes and parses back to itself; negotiate_server's response re-parses to exactly
//      its element, is accepted by a client that offered anything, with the same parameters,
//      and stays within the server's limits; a declined list has no acceptable offer;
//      accept_client_response on the value never crashes and keeps within what was offered;
//      our own client offer is always accepted by the server and back.
//   1  inflate: [config][split seed][limit][windows][bytes...] — arbitrary bytes as
//      compressed messages (cut into up to three at input-derived points), inflated with a
//      bounded max_output both whole and in input-derived pieces: never more than max_output;
//      with a 32 KiB window, the same status and output either way and, for the first
//      message, the same answer as plain zlib (raw inflate, trailer appended). (With a smaller
//      window, a distance past the agreed window is caught or not depending on how much
//      output one inflate() call holds, so only the invariants are checked there.)
//   2  round trip: [config][split seed][level][windows][bytes...] — messages compressed by one side
//      and inflated in pieces by the other come back unchanged, and a strict decoder with
//      exactly the agreed window (one output byte per call) decodes the payloads too.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "test/fuzz/fuzz_common.hpp"
#include "websock/codec/deflate.hpp"
#include "websock/codec/extension.hpp"

using namespace websock::codec;

namespace {

constexpr std::size_t kLimits[] = {0, 1, 5, 100, 4096, 65536, 1 << 20};
const std::string kTrailer("\x00\x00\xff\xff", 4);

DeflateOptions options_from(std::uint8_t b) {
    DeflateOptions o;
    o.enabled = true;
    o.server_no_context_takeover = b & 1;
    o.client_no_context_takeover = b & 2;
    o.server_max_window_bits = (b & 4) ? 8 + ((b >> 4) & 7) : 15;
    o.client_max_window_bits = (b & 8) ? 8 + ((b >> 5) & 7) : 15;
    return o;
}

/// Flags from `config` (bit 0, 1: no_context_takeover; bit 2: both windows 15), windows from
/// `bits`.
DeflateAgreement agreement_from(std::uint8_t config, std::uint8_t bits) {
    DeflateAgreement a;
    a.server_no_context_takeover = config & 1;
    a.client_no_context_takeover = config & 2;
    a.server_max_window_bits = (config & 4) ? 15 : 8 + (bits & 7);
    a.client_max_window_bits = (config & 4) ? 15 : 8 + ((bits >> 3) & 7);
    return a;
}

/// Up to three messages, cut at points derived from `seed`.
std::vector<std::string_view> messages_of(std::string_view data, std::uint8_t seed) {
    std::vector<std::string_view> out;
    const std::size_t count = 1 + seed % 3;
    std::uint32_t x = seed * 2654435761u + 7;
    for (std::size_t i = 0; i + 1 < count && !data.empty(); ++i) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const std::size_t take = x % (data.size() + 1);
        out.push_back(data.substr(0, take));
        data.remove_prefix(take);
    }
    out.push_back(data);
    return out;
}

// ---- 0: the header, the negotiation ----------------------------------------------------------

void fuzz_header(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return;
    const DeflateOptions server = options_from(data[0]);
    const DeflateOptions client = options_from(data[1]);
    const std::string_view value(reinterpret_cast<const char*>(data + 2), size - 2);

    const auto parsed = parse_extensions(value);
    if (!parsed.ok()) {
        FUZZ_CHECK(parsed.offers.empty());
        FUZZ_CHECK(parsed.error_offset <= value.size());
    } else {
        // every parsed name and value is a token, so this never throws
        const std::string text = serialize_extensions(parsed.offers);
        const auto again = parse_extensions(text);
        FUZZ_CHECK(again.ok());
        FUZZ_CHECK(again.offers == parsed.offers);
        FUZZ_CHECK(serialize_extensions(again.offers) == text);

        const auto agreed = negotiate_server(parsed.offers, server);
        if (agreed) {
            const std::string response = agreed->response_header();
            const auto reparsed = parse_extensions(response);
            FUZZ_CHECK(reparsed.ok());
            FUZZ_CHECK(reparsed.offers.size() == 1);
            FUZZ_CHECK(reparsed.offers[0] == agreed->response);
            FUZZ_CHECK(reparsed.offers[0].name == kPermessageDeflate);
            // within the server's own limits and wishes
            FUZZ_CHECK(agreed->server_max_window_bits >= kMinWindowBits);
            FUZZ_CHECK(agreed->server_max_window_bits <= server.server_max_window_bits);
            FUZZ_CHECK(agreed->client_max_window_bits >= kMinWindowBits);
            FUZZ_CHECK(agreed->client_max_window_bits <= server.client_max_window_bits);
            FUZZ_CHECK(!server.server_no_context_takeover || agreed->server_no_context_takeover);
            FUZZ_CHECK(!server.client_no_context_takeover || agreed->client_no_context_takeover);
            // a client that offered every parameter accepts it, with the same parameters
            DeflateOptions any_client;
            any_client.enabled = true;
            const auto on_client = accept_client_response(response, any_client);
            FUZZ_CHECK(on_client.ok());
            FUZZ_CHECK(on_client.agreement.has_value());
            FUZZ_CHECK(on_client.agreement->same_parameters(*agreed));
            // the chosen offer is the first acceptable one
            std::size_t first_ok = parsed.offers.size();
            for (std::size_t i = 0; i < parsed.offers.size(); ++i)
                if (check_offer(parsed.offers[i], server).empty()) {
                    first_ok = i;
                    break;
                }
            FUZZ_CHECK(first_ok < parsed.offers.size());
            const auto alone = negotiate_server({parsed.offers[first_ok]}, server);
            FUZZ_CHECK(alone.has_value());
            FUZZ_CHECK(alone->response == agreed->response);
        } else {
            for (const auto& offer : parsed.offers) FUZZ_CHECK(!check_offer(offer, server).empty());
        }
    }

    // the value as a server's response to `client`
    const auto as_response = accept_client_response(value, client);
    if (as_response.ok() && as_response.agreement) {
        const auto& a = *as_response.agreement;
        FUZZ_CHECK(parsed.ok());
        FUZZ_CHECK(a.server_max_window_bits >= kMinWindowBits && a.server_max_window_bits <= kMaxWindowBits);
        FUZZ_CHECK(a.client_max_window_bits >= kMinWindowBits && a.client_max_window_bits <= client.client_max_window_bits);
        if (client.server_max_window_bits < kMaxWindowBits)
            FUZZ_CHECK(a.server_max_window_bits <= client.server_max_window_bits);
        FUZZ_CHECK(!client.server_no_context_takeover || a.server_no_context_takeover);
        FUZZ_CHECK(!client.client_no_context_takeover || a.client_no_context_takeover);
    }
    if (!as_response.ok()) FUZZ_CHECK(!as_response.agreement.has_value());

    // our own offer always goes through, both ways
    const auto agreed = negotiate_server(parse_extensions(make_client_offer(client)).offers, server);
    FUZZ_CHECK(agreed.has_value());
    const auto back = accept_client_response(agreed->response_header(), client);
    FUZZ_CHECK(back.ok() && back.agreement && back.agreement->same_parameters(*agreed));
}

// ---- 1: inflate arbitrary bytes -----------------------------------------------------------------

struct Reference {
    enum { Ok, Corrupt, TooBig, Skip } status;
    std::string out;
};

/// Plain zlib on one message from a fresh stream: raw inflate, same window, trailer appended,
/// output capped at max_output + 1. Skip when the stream ends with BFINAL (our decoder goes on
/// after it; plain inflate stops) or the payload is empty (we skip the trailer then).
Reference reference_inflate(std::string_view payload, int bits, std::size_t max_output) {
    if (payload.empty()) return {Reference::Skip, {}};
    z_stream s{};
    if (inflateInit2(&s, -bits) != Z_OK) fuzz::fail("inflateInit2");
    const std::string in = std::string(payload) + kTrailer;
    std::string out(max_output + 1, '\0');
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = reinterpret_cast<Bytef*>(out.data());
    s.avail_out = static_cast<uInt>(out.size());
    const int rc = ::inflate(&s, Z_SYNC_FLUSH);
    out.resize(out.size() - s.avail_out);
    const bool boundary = (s.data_type & 128) != 0;
    inflateEnd(&s);
    if (rc == Z_STREAM_END) return {Reference::Skip, {}};
    if (rc == Z_DATA_ERROR) return {out.size() > max_output ? Reference::TooBig : Reference::Corrupt, out};
    if (out.size() > max_output) return {Reference::TooBig, out};
    if (rc != Z_OK && rc != Z_BUF_ERROR) fuzz::fail("unexpected zlib status");
    return {boundary ? Reference::Ok : Reference::Corrupt, out};
}

void fuzz_inflate(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return;
    const std::uint8_t config = data[0];
    const std::uint8_t seed = data[1];
    const std::size_t max_output = kLimits[data[2] % std::size(kLimits)];
    const DeflateAgreement a = agreement_from(config, data[3]);
    const std::string_view rest(reinterpret_cast<const char*>(data + 4), size - 4);
    const Role role = (config & 0x80) ? Role::Client : Role::Server;
    const int peer_bits = role == Role::Server ? a.client_max_window_bits : a.server_max_window_bits;
    const bool exact = peer_bits == 15;
    const auto messages = messages_of(rest, seed);

    PerMessageDeflate whole(role, a, DeflateOptions{});
    PerMessageDeflate pieces(role, a, DeflateOptions{});
    std::string out_whole, out_pieces;
    for (std::size_t m = 0; m < messages.size(); ++m) {
        const std::string_view payload = messages[m];
        out_whole.clear();
        const auto st_whole = whole.decompress(payload, true, out_whole, max_output);
        FUZZ_CHECK(out_whole.size() <= max_output);

        out_pieces.clear();
        InflateStatus st_pieces = InflateStatus::Ok;
        std::size_t pos = 0;
        const auto sizes = fuzz::chunk_sizes(payload.size(), seed + static_cast<std::uint32_t>(m));
        const bool empty_final = (seed & 0x40) != 0 || sizes.empty();
        for (std::size_t i = 0; i < sizes.size() && st_pieces == InflateStatus::Ok; ++i) {
            const bool last = i + 1 == sizes.size() && !empty_final;
            st_pieces = pieces.decompress(payload.substr(pos, sizes[i]), last, out_pieces, max_output);
            pos += sizes[i];
            FUZZ_CHECK(out_pieces.size() <= max_output);
        }
        if (st_pieces == InflateStatus::Ok && empty_final)
            st_pieces = pieces.decompress({}, true, out_pieces, max_output);
        FUZZ_CHECK(out_pieces.size() <= max_output);

        if (exact) FUZZ_CHECK(st_whole == st_pieces);
        if (st_whole == InflateStatus::Ok && st_pieces == InflateStatus::Ok) FUZZ_CHECK_EQ(out_whole, out_pieces);
        if (st_whole != st_pieces) break;  // (small window) the two decoders' windows now differ

        if (m == 0 && exact) {
            const auto ref = reference_inflate(payload, peer_bits, max_output);
            switch (ref.status) {
                case Reference::Ok:
                    FUZZ_CHECK(st_whole == InflateStatus::Ok);
                    FUZZ_CHECK_EQ(out_whole, ref.out);
                    break;
                case Reference::Corrupt:
                    FUZZ_CHECK(st_whole == InflateStatus::Corrupt);
                    break;
                case Reference::TooBig:
                    FUZZ_CHECK(st_whole == InflateStatus::TooBig);
                    FUZZ_CHECK(ref.out.compare(0, out_whole.size(), out_whole) == 0);
                    break;
                case Reference::Skip:
                    break;
            }
        }
        if (st_whole != InflateStatus::Ok) {
            // sticky
            FUZZ_CHECK(whole.decompress("\x00", true, out_whole, max_output) == st_whole);
            break;
        }
    }
}

// ---- 2: compress, then inflate ---------------------------------------------------------------------

/// Raw inflate with a window of exactly 2^bits, one output byte per call (every match must
/// come from the window). `reset` starts each payload from a fresh stream.
std::optional<std::string> strict_inflate(const std::vector<std::string>& payloads, int bits, bool reset) {
    z_stream s{};
    if (inflateInit2(&s, -bits) != Z_OK) fuzz::fail("inflateInit2");
    std::string out;
    bool ok = true;
    for (const auto& p : payloads) {
        if (reset) inflateReset(&s);
        const std::string in = p + kTrailer;
        s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        s.avail_in = static_cast<uInt>(in.size());
        for (;;) {
            unsigned char byte;
            s.next_out = &byte;
            s.avail_out = 1;
            const int rc = ::inflate(&s, Z_SYNC_FLUSH);
            if (s.avail_out == 0) out.push_back(static_cast<char>(byte));
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                ok = false;
                break;
            }
            if (s.avail_in == 0 && s.avail_out == 1) break;
        }
        if (!ok) break;
    }
    inflateEnd(&s);
    if (!ok) return std::nullopt;
    return out;
}

void fuzz_round_trip(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return;
    const std::uint8_t config = data[0];
    const std::uint8_t seed = data[1];
    const std::uint8_t level = data[2];
    const DeflateAgreement a = agreement_from(config, data[3]);
    const std::string_view rest(reinterpret_cast<const char*>(data + 4), size - 4);
    const Role sender_role = (config & 0x80) ? Role::Client : Role::Server;
    const Role receiver_role = sender_role == Role::Server ? Role::Client : Role::Server;
    DeflateOptions o;
    o.min_compress_bytes = (level & 0x80) ? 16 : 0;
    o.compression_level = level % 10;
    o.mem_level = 1 + (level >> 4) % 9;
    PerMessageDeflate sender(sender_role, a, o);
    PerMessageDeflate receiver(receiver_role, a, o);
    const bool sender_resets =
        sender_role == Role::Server ? a.server_no_context_takeover : a.client_no_context_takeover;
    const int sender_bits = sender_role == Role::Server ? a.server_max_window_bits : a.client_max_window_bits;

    std::vector<std::string> payloads;
    std::string plain;
    for (const auto message : messages_of(rest, seed)) {
        std::string payload;
        if (!sender.compress(message, payload)) {
            FUZZ_CHECK(message.size() < o.min_compress_bytes);
            FUZZ_CHECK(payload.empty());
            continue;
        }
        std::string out;
        std::size_t pos = 0;
        const auto sizes = fuzz::chunk_sizes(payload.size(), seed);
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            FUZZ_CHECK(receiver.decompress(std::string_view(payload).substr(pos, sizes[i]), i + 1 == sizes.size(), out,
                                           message.size()) == InflateStatus::Ok);
            pos += sizes[i];
        }
        if (sizes.empty()) FUZZ_CHECK(receiver.decompress({}, true, out, message.size()) == InflateStatus::Ok);
        FUZZ_CHECK_EQ(out, std::string(message));
        payloads.push_back(std::move(payload));
        plain += message;
    }
    const auto strict = strict_inflate(payloads, sender_bits, sender_resets);
    FUZZ_CHECK(strict.has_value());
    FUZZ_CHECK_EQ(*strict, plain);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    switch (data[0] % 3) {
        case 0:
            fuzz_header(data + 1, size - 1);
            break;
        case 1:
            fuzz_inflate(data + 1, size - 1);
            break;
        default:
            fuzz_round_trip(data + 1, size - 1);
            break;
    }
    return 0;
}
