#include "websock/codec/deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

namespace websock::codec {

namespace {

constexpr std::string_view kServerNoContextTakeover = "server_no_context_takeover";
constexpr std::string_view kClientNoContextTakeover = "client_no_context_takeover";
constexpr std::string_view kServerMaxWindowBits = "server_max_window_bits";
constexpr std::string_view kClientMaxWindowBits = "client_max_window_bits";

int clamp_bits(int bits) noexcept { return std::clamp(bits, kMinWindowBits, kMaxWindowBits); }

/// RFC 7692 section 7.1.2.1/7.1.2.2: "a decimal integer value without leading zeroes between
/// 8 to 15, inclusive".
std::optional<int> parse_window_bits(std::string_view text) noexcept {
    if (text.size() == 1 && text[0] >= '8' && text[0] <= '9') return text[0] - '0';
    if (text.size() == 2 && text[0] == '1' && text[1] >= '0' && text[1] <= '5') return 10 + (text[1] - '0');
    return std::nullopt;
}

/// The parameters of one permessage-deflate element, checked for syntax (section 7).
struct Params {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    std::optional<int> server_max_window_bits;
    bool has_client_max_window_bits = false;
    std::optional<int> client_max_window_bits;  // an offer may carry the parameter without value
};

/// Empty on success, else why the element is invalid. `response`: the rules of a response
/// (client_max_window_bits must then have a value).
std::string_view read_params(const ExtensionOffer& element, bool response, Params& out) {
    bool seen[4] = {false, false, false, false};
    for (const auto& p : element.params) {
        int which;
        if (token_iequals(p.name, kServerNoContextTakeover)) which = 0;
        else if (token_iequals(p.name, kClientNoContextTakeover)) which = 1;
        else if (token_iequals(p.name, kServerMaxWindowBits)) which = 2;
        else if (token_iequals(p.name, kClientMaxWindowBits)) which = 3;
        else return "unknown permessage-deflate parameter";
        if (seen[which]) return "duplicate permessage-deflate parameter";
        seen[which] = true;
        switch (which) {
            case 0:
                if (p.value) return "server_no_context_takeover takes no value";
                out.server_no_context_takeover = true;
                break;
            case 1:
                if (p.value) return "client_no_context_takeover takes no value";
                out.client_no_context_takeover = true;
                break;
            case 2: {
                if (!p.value) return "server_max_window_bits needs a value";
                const auto bits = parse_window_bits(*p.value);
                if (!bits) return "server_max_window_bits is not 8..15";
                out.server_max_window_bits = bits;
                break;
            }
            default: {
                out.has_client_max_window_bits = true;
                if (!p.value) {
                    if (response) return "client_max_window_bits needs a value in a response";
                    break;
                }
                const auto bits = parse_window_bits(*p.value);
                if (!bits) return "client_max_window_bits is not 8..15";
                out.client_max_window_bits = bits;
                break;
            }
        }
    }
    return {};
}

void add_param(ExtensionOffer& element, std::string_view name) { element.params.push_back({std::string(name), {}}); }
void add_param(ExtensionOffer& element, std::string_view name, int value) {
    element.params.push_back({std::string(name), std::to_string(value)});
}

/// Decide on one offer; on success fill `out` (with the response element).
std::string_view accept_offer(const ExtensionOffer& offer, const DeflateOptions& options, DeflateAgreement* out) {
    if (!token_iequals(offer.name, kPermessageDeflate)) return "not permessage-deflate";
    Params p;
    if (const auto why = read_params(offer, /*response=*/false, p); !why.empty()) return why;
    const int our_server_bits = clamp_bits(options.server_max_window_bits);
    const int our_client_bits = clamp_bits(options.client_max_window_bits);
    // Section 7.1.2.2: without client_max_window_bits in the offer the response must not
    // carry it, so the client may use a 32 KiB window: refuse if we promised less memory.
    if (!p.has_client_max_window_bits && our_client_bits < kMaxWindowBits)
        return "client_max_window_bits not offered, so the client's window cannot be limited";
    if (out == nullptr) return {};

    DeflateAgreement a;
    a.response.name = std::string(kPermessageDeflate);
    // Section 7.1.1.1: a client's request binds us; we may also include it unasked.
    // A shared compressor (options.shared_compressor) forgets between messages, so it needs it.
    a.server_no_context_takeover =
        p.server_no_context_takeover || options.server_no_context_takeover || options.shared_compressor;
    if (a.server_no_context_takeover) add_param(a.response, kServerNoContextTakeover);
    // Section 7.1.1.2: the server may include it whether offered or not; echoing a client's
    // own hint makes it binding, so we may forget the window between its messages.
    a.client_no_context_takeover = p.client_no_context_takeover || options.client_no_context_takeover;
    if (a.client_no_context_takeover) add_param(a.response, kClientNoContextTakeover);
    // Section 7.1.2.1: accept the offered value or a smaller one (the parameter must be in the
    // response when offered); it may also be included unasked.
    if (p.server_max_window_bits) {
        a.server_max_window_bits = std::min(*p.server_max_window_bits, our_server_bits);
        add_param(a.response, kServerMaxWindowBits, a.server_max_window_bits);
    } else if (our_server_bits < kMaxWindowBits) {
        a.server_max_window_bits = our_server_bits;
        add_param(a.response, kServerMaxWindowBits, a.server_max_window_bits);
    }
    // Section 7.1.2.2: only when offered, with a value not above the offered one.
    if (p.has_client_max_window_bits) {
        a.client_max_window_bits = std::min(p.client_max_window_bits.value_or(kMaxWindowBits), our_client_bits);
        if (a.client_max_window_bits < kMaxWindowBits)
            add_param(a.response, kClientMaxWindowBits, a.client_max_window_bits);
    }
    *out = std::move(a);
    return {};
}

}  // namespace

// ---- negotiation ----------------------------------------------------------------------------

std::string_view check_offer(const ExtensionOffer& offer, const DeflateOptions& options) {
    if (!options.enabled) return "permessage-deflate is disabled";
    return accept_offer(offer, options, nullptr);
}

std::optional<DeflateAgreement> negotiate_server(const std::vector<ExtensionOffer>& offers,
                                                 const DeflateOptions& options) {
    if (!options.enabled) return std::nullopt;
    for (const auto& offer : offers) {
        DeflateAgreement agreement;
        if (accept_offer(offer, options, &agreement).empty()) return agreement;
    }
    return std::nullopt;
}

std::string make_client_offer(const DeflateOptions& options) {
    if (!options.enabled) return {};
    ExtensionOffer offer;
    offer.name = std::string(kPermessageDeflate);
    if (options.server_no_context_takeover) add_param(offer, kServerNoContextTakeover);
    if (options.client_no_context_takeover) add_param(offer, kClientNoContextTakeover);
    const int server_bits = clamp_bits(options.server_max_window_bits);
    const int client_bits = clamp_bits(options.client_max_window_bits);
    if (server_bits < kMaxWindowBits) add_param(offer, kServerMaxWindowBits, server_bits);
    if (client_bits < kMaxWindowBits) add_param(offer, kClientMaxWindowBits, client_bits);
    else add_param(offer, kClientMaxWindowBits);
    return serialize_extension(offer);
}

DeflateClientResult accept_client_response(const ExtensionOffer& element, const DeflateOptions& options) {
    DeflateClientResult result;
    if (!token_iequals(element.name, kPermessageDeflate)) {
        result.error = "the server accepted an extension that was not offered";
        return result;
    }
    if (!options.enabled) {
        result.error = "the server accepted permessage-deflate, which was not offered";
        return result;
    }
    Params p;
    if (const auto why = read_params(element, /*response=*/true, p); !why.empty()) {
        result.error = why;
        return result;
    }
    const int our_server_bits = clamp_bits(options.server_max_window_bits);
    const int our_client_bits = clamp_bits(options.client_max_window_bits);
    DeflateAgreement a;
    // Section 7.1.1.1: the server may add it unasked, but must not drop it when asked.
    if (options.server_no_context_takeover && !p.server_no_context_takeover) {
        result.error = "the server did not agree to server_no_context_takeover";
        return result;
    }
    a.server_no_context_takeover = p.server_no_context_takeover;
    // Section 7.1.1.2: the server may ask for it unasked; our own offer of it is a promise.
    a.client_no_context_takeover = p.client_no_context_takeover || options.client_no_context_takeover;
    // Section 7.1.2.1: the same or a smaller value than asked; may come unasked.
    if (p.server_max_window_bits) {
        if (our_server_bits < kMaxWindowBits && *p.server_max_window_bits > our_server_bits) {
            result.error = "server_max_window_bits is larger than the one offered";
            return result;
        }
        a.server_max_window_bits = *p.server_max_window_bits;
    } else if (our_server_bits < kMaxWindowBits) {
        result.error = "the server did not agree to server_max_window_bits";
        return result;
    }
    // Section 7.1.2.2: never above what we offered (we always offer the parameter).
    if (p.client_max_window_bits) {
        if (*p.client_max_window_bits > our_client_bits) {
            result.error = "client_max_window_bits is larger than the one offered";
            return result;
        }
        a.client_max_window_bits = *p.client_max_window_bits;
    } else {
        a.client_max_window_bits = our_client_bits;
    }
    a.response = element;
    result.agreement = std::move(a);
    return result;
}

DeflateClientResult accept_client_response(std::string_view response_value, const DeflateOptions& options) {
    DeflateClientResult result;
    const auto parsed = parse_extensions(response_value);
    if (!parsed.ok()) {
        result.error = "the Sec-WebSocket-Extensions response does not parse";
        return result;
    }
    for (const auto& element : parsed.offers) {
        if (result.agreement) {
            result.agreement.reset();
            result.error = token_iequals(element.name, kPermessageDeflate)
                               ? "the server accepted permessage-deflate twice"
                               : "the server accepted an extension that was not offered";
            return result;
        }
        result = accept_client_response(element, options);
        if (!result.ok()) return result;
    }
    return result;
}

// ---- PerMessageDeflate ----------------------------------------------------------------------

namespace {

/// Each inflate() call writes at most this much into the caller's buffer. The part of the
/// buffer handed to zlib is zero-filled first (std::string::resize), so a call starts with
/// room for about four times its input and doubles that while the output keeps filling it.
constexpr std::size_t kInflateStep = 64 * 1024;
constexpr std::size_t kFirstInflateStep = 1024;
/// The smallest reallocation of the output buffer while inflating.
constexpr std::size_t kMinGrow = 16 * 1024;
/// zlib counts in uInt; larger inputs go in slices.
constexpr std::size_t kMaxZlibChunk = std::size_t{1} << 30;
constexpr unsigned char kTrailer[4] = {0x00, 0x00, 0xff, 0xff};

/// This thread's compressor for one (level, window, memLevel), for shared_compressor: every
/// connection without context takeover that sends from this thread uses it, one whole
/// message at a time, and leaves it reset. Freed when the thread ends.
z_stream& thread_deflater(int level, int window_bits, int mem_level) {
    struct Shared {
        int level, window_bits, mem_level;
        z_stream stream{};
        Shared(int l, int w, int m) : level(l), window_bits(w), mem_level(m) {}
        Shared(const Shared&) = delete;
        Shared& operator=(const Shared&) = delete;
        ~Shared() { deflateEnd(&stream); }
    };
    thread_local std::vector<std::unique_ptr<Shared>> streams;  // a server uses one or two
    for (auto& shared : streams)
        if (shared->level == level && shared->window_bits == window_bits && shared->mem_level == mem_level)
            return shared->stream;
    auto shared = std::make_unique<Shared>(level, window_bits, mem_level);
    const int rc = deflateInit2(&shared->stream, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY);
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc != Z_OK) throw std::runtime_error("deflateInit2 failed");
    streams.push_back(std::move(shared));  // on bad_alloc here, ~Shared ends the stream
    return streams.back()->stream;
}

}  // namespace

struct PerMessageDeflate::Zlib {
    z_stream deflater{};
    z_stream inflater{};
    bool deflater_ready = false;
    bool inflater_ready = false;
    std::unique_ptr<unsigned char[]> window;  // the inflater's window, kept across a BFINAL block

    Zlib() = default;
    Zlib(const Zlib&) = delete;
    Zlib& operator=(const Zlib&) = delete;
    ~Zlib() {
        if (deflater_ready) deflateEnd(&deflater);
        if (inflater_ready) inflateEnd(&inflater);
    }
};

PerMessageDeflate::PerMessageDeflate(Role role, const DeflateAgreement& agreement, const DeflateOptions& options)
    : role_(role),
      agreement_(agreement),
      min_compress_bytes_(options.min_compress_bytes),
      level_(std::clamp(options.compression_level, 0, 9)),
      mem_level_(std::clamp(options.mem_level, 1, 9)),
      z_(std::make_unique<Zlib>()) {
    const bool server = role == Role::Server;
    reset_deflate_each_message_ =
        server ? agreement.server_no_context_takeover : agreement.client_no_context_takeover;
    reset_inflate_each_message_ =
        server ? agreement.client_no_context_takeover : agreement.server_no_context_takeover;
    shared_deflater_ = server && options.shared_compressor && reset_deflate_each_message_;
    free_inflater_each_message_ = server && options.shared_compressor && reset_inflate_each_message_;
    const int ours = clamp_bits(server ? agreement.server_max_window_bits : agreement.client_max_window_bits);
    const int peers = clamp_bits(server ? agreement.client_max_window_bits : agreement.server_max_window_bits);
    // zlib refuses a 256-byte window for raw deflate; with 512 its matches reach back at most
    // 512 - 262 = 250 bytes, which a 256-byte window decodes.
    deflate_window_bits_ = std::max(ours, 9);
    // Decode with the largest window whatever the peer agreed to: a stream made with a
    // smaller window decodes the same, and a peer that reaches further back than it said is
    // then decoded consistently, rather than refused or not depending on how its data was
    // cut into frames. It costs at most 32 KiB for a client that sends compressed messages.
    (void)peers;
    inflate_window_bits_ = kMaxWindowBits;
}

PerMessageDeflate::~PerMessageDeflate() = default;
PerMessageDeflate::PerMessageDeflate(PerMessageDeflate&&) noexcept = default;
PerMessageDeflate& PerMessageDeflate::operator=(PerMessageDeflate&&) noexcept = default;

bool PerMessageDeflate::compress(std::string_view message, std::string& out) {
    if (message.size() < min_compress_bytes_) return false;
    if (message.empty()) {
        // Section 7.2.3.6: an empty stored block, trailer removed. (zlib would emit nothing
        // for a second sync flush in a row.) The window is unchanged on both ends.
        out.push_back('\0');
        return true;
    }
    if (!shared_deflater_ && !z_->deflater_ready) {
        const int rc = deflateInit2(&z_->deflater, level_, Z_DEFLATED, -deflate_window_bits_, mem_level_, Z_DEFAULT_STRATEGY);
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc != Z_OK) throw std::runtime_error("deflateInit2 failed");
        z_->deflater_ready = true;
    }
    z_stream& s = shared_deflater_ ? thread_deflater(level_, deflate_window_bits_, mem_level_) : z_->deflater;
    // However this message ends (a throw included), a stream without context takeover
    // starts the next one reset; a shared one must, since other connections use it next.
    struct ResetAfter {
        z_stream& stream;
        bool enabled;
        ~ResetAfter() {
            if (enabled) deflateReset(&stream);
        }
    } reset_after{s, reset_deflate_each_message_};

    const std::size_t start = out.size();
    const auto* in = reinterpret_cast<const unsigned char*>(message.data());
    std::size_t in_left = message.size();
    s.avail_in = 0;
    // Room for the usual case in one call: deflateBound is for Z_FINISH; a sync flush adds
    // at most an empty stored block and the bits pending before it.
    std::size_t room = deflateBound(&s, static_cast<uLong>(std::min(in_left, kMaxZlibChunk))) + 16;
    for (;;) {
        if (s.avail_in == 0 && in_left > 0) {
            const std::size_t take = std::min(in_left, kMaxZlibChunk);
            s.next_in = const_cast<unsigned char*>(in);
            s.avail_in = static_cast<uInt>(take);
            in += take;
            in_left -= take;
        }
        const int flush = in_left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        const std::size_t old = out.size();
        out.resize(old + room);
        s.next_out = reinterpret_cast<unsigned char*>(out.data() + old);
        s.avail_out = static_cast<uInt>(room);
        const int rc = ::deflate(&s, flush);
        out.resize(old + (room - s.avail_out));
        if (rc == Z_STREAM_ERROR) {
            out.resize(start);
            throw std::logic_error("deflate: inconsistent stream state");
        }
        // Z_BUF_ERROR only says no progress was possible: the loop condition below decides.
        if (s.avail_out != 0 && s.avail_in == 0 && flush == Z_SYNC_FLUSH) break;  // all flushed
        room = std::min<std::size_t>(std::max<std::size_t>(room, 64 * 1024), kMaxZlibChunk);
    }
    // Section 7.2.1: the sync flush ends with an empty stored block, 00 00 ff ff; drop it.
    if (out.size() - start < 4 || std::memcmp(out.data() + out.size() - 4, kTrailer, 4) != 0) {
        out.resize(start);
        throw std::logic_error("deflate: sync flush did not end with an empty stored block");
    }
    out.resize(out.size() - 4);
    return true;
}

InflateStatus PerMessageDeflate::decompress(std::string_view piece, bool final, std::string& out,
                                            std::size_t max_output) {
    if (inflate_failed_ != InflateStatus::Ok) return inflate_failed_;
    z_stream& s = z_->inflater;
    if (!z_->inflater_ready) {
        const int rc = inflateInit2(&s, -inflate_window_bits_);
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc != Z_OK) throw std::runtime_error("inflateInit2 failed");
        z_->inflater_ready = true;
    }
    if (!piece.empty()) {
        const auto status =
            inflate_some(reinterpret_cast<const std::uint8_t*>(piece.data()), piece.size(), out, max_output);
        if (status != InflateStatus::Ok) return status;
    }
    if (!final) return InflateStatus::Ok;

    // Section 7.2.2: append 00 00 ff ff and inflate. When nothing came since the message
    // start or since a BFINAL block ended the stream (an empty payload: nothing to flush), the
    // trailer is not fed: a stored-block header without its length would be left half-read.
    if (!clean_) {
        const auto status = inflate_some(kTrailer, sizeof kTrailer, out, max_output);
        if (status != InflateStatus::Ok) return status;
        // A sender following section 7.2.1 always ends on a block boundary once the trailer
        // is back; anything else is a cut or garbled stream.
        if (!clean_ && (s.data_type & 128) == 0) return fail(InflateStatus::Corrupt);
    }
    message_out_ = 0;
    clean_ = true;
    if (free_inflater_each_message_) {
        inflateEnd(&s);  // nothing carries over: hold no memory until the next message
        z_->inflater_ready = false;
        z_->window.reset();
    } else if (reset_inflate_each_message_) {
        inflateReset(&s);
    }
    return InflateStatus::Ok;
}

InflateStatus PerMessageDeflate::inflate_some(const std::uint8_t* data, std::size_t size, std::string& out,
                                              std::size_t max_output) {
    z_stream& s = z_->inflater;
    const std::uint8_t* in = data;
    std::size_t in_left = size;
    s.avail_in = 0;
    bool more_output = false;  // the last call filled its output: zlib may hold more
    std::size_t step = std::clamp(size * 4, kFirstInflateStep, kInflateStep);
    for (;;) {
        if (s.avail_in == 0 && in_left > 0) {
            const std::size_t take = std::min(in_left, kMaxZlibChunk);
            s.next_in = const_cast<std::uint8_t*>(in);
            s.avail_in = static_cast<uInt>(take);
            in += take;
            in_left -= take;
        }
        if (s.avail_in == 0 && !more_output) return InflateStatus::Ok;

        // Output space: never more than the budget left. With no budget left, a one-byte
        // probe tells whether the stream has more to give (then the message is too big).
        const std::size_t budget = max_output > message_out_ ? max_output - message_out_ : 0;
        const bool probing = budget == 0;
        unsigned char probe = 0;
        const std::size_t old = out.size();
        std::size_t room = 1;
        if (probing) {
            s.next_out = &probe;
        } else {
            if (out.capacity() == old) {
                // Grow by hand (exact capacity), so the buffer never exceeds start + max_output
                // by more than the slack below, whatever the string's own growth policy is.
                const std::size_t add = std::min(std::max(old, kMinGrow), budget);
                std::string bigger;
                bigger.reserve(old + add);
                bigger.append(out);
                out.swap(bigger);
            }
            room = std::min({out.capacity() - old, budget, step});
            out.resize(old + room);
            s.next_out = reinterpret_cast<unsigned char*>(out.data() + old);
        }
        s.avail_out = static_cast<uInt>(room);
        const uInt in_before = s.avail_in;
        const int rc = ::inflate(&s, Z_SYNC_FLUSH);
        const std::size_t produced = room - s.avail_out;
        if (!probing) out.resize(old + produced);
        if (s.avail_in != in_before) clean_ = false;
        // A byte past the budget came before anything else this call found (zlib may go on
        // to decode, and reject, the next code with its output full): too big, in stream order.
        if (probing && produced > 0) return fail(InflateStatus::TooBig);
        switch (rc) {
            case Z_OK:
            case Z_BUF_ERROR:
            case Z_STREAM_END:
                break;
            case Z_MEM_ERROR:
                throw std::bad_alloc();
            default:  // Z_DATA_ERROR; Z_NEED_DICT and Z_STREAM_ERROR cannot happen on raw streams
                return fail(InflateStatus::Corrupt);
        }
        message_out_ += produced;

        if (rc == Z_STREAM_END) {
            // A block with BFINAL set ended the DEFLATE stream. Section 7.2.1: the next block
            // follows (byte-aligned) and the LZ77 window carries on, so restart the stream
            // with the window as its dictionary.
            if (!z_->window) z_->window = std::make_unique<unsigned char[]>(std::size_t{1} << kMaxWindowBits);
            uInt length = 0;
            inflateGetDictionary(&s, z_->window.get(), &length);
            inflateReset(&s);
            if (length > 0) inflateSetDictionary(&s, z_->window.get(), length);
            clean_ = true;
            more_output = false;
            continue;
        }
        more_output = s.avail_out == 0;
        if (more_output) step = std::min(step * 2, kInflateStep);
        if (produced == 0 && s.avail_in == in_before && s.avail_in > 0)
            return fail(InflateStatus::Corrupt);  // no progress with input and room: never loop
    }
}

}  // namespace websock::codec
