#include "websock/connection.hpp"

#include <openssl/rand.h>

#include "websock/codec/close.hpp"

namespace websock {

using codec::Opcode;

Connection::Connection(ConnectionOptions options)
    : options_(options),
      decoder_(codec::FrameDecoder::Options{options.role, 0, options.max_frame_bytes}) {}

std::size_t Connection::feed(std::uint8_t* data, std::size_t size, ConnectionHandler& handler) {
    if (state_ == State::Closed || size == 0) return 0;
    handler_ = &handler;
    const auto result = decoder_.feed(data, size, *this);
    handler_ = nullptr;
    if (frame_in_place_ && !in_place_view_.empty()) {
        // The frame continues in a later read; the caller may reuse this buffer, so copy.
        message_.append(in_place_view_);
        in_place_view_ = {};
        frame_in_place_ = false;
    }
    if (result.failed && state_ != State::Closed) fail(decoder_.error().code, decoder_.error().reason);
    return result.consumed;
}

bool Connection::on_frame_header(const codec::FrameHeader& header) {
    frame_is_control_ = codec::is_control(header.opcode);
    frame_in_place_ = false;
    if (frame_is_control_) {
        control_.clear();
        return true;
    }
    // Section 5.4: a continuation needs a message to continue; a new message may not start
    // while another is still being fragmented.
    if (header.opcode == Opcode::Continuation) {
        if (!in_message_) {
            fail(CloseCode::ProtocolError, "continuation frame without a message to continue");
            return false;
        }
        // RFC 7692 section 6.1: the extension's RSV bits belong to a message's first frame only.
        if (extension_rsv_ != 0 && (header.rsv & extension_rsv_) != 0) {
            fail(CloseCode::ProtocolError, "RSV1 set on a continuation frame");
            return false;
        }
    } else {
        if (in_message_) {
            fail(CloseCode::ProtocolError, "new message started inside a fragmented message");
            return false;
        }
        in_message_ = true;
        message_type_ = header.opcode == Opcode::Text ? MessageType::Text : MessageType::Binary;
        message_.clear();
        utf8_.reset();
        // The negotiated extension's RSV bits mark a message it must decode.
        message_encoded_ = incoming_ != nullptr && (header.rsv & extension_rsv_) != 0;
        // The common case, an unfragmented message, is delivered straight from the read
        // buffer when its payload arrives in one piece.
        frame_in_place_ = header.fin && !message_encoded_;
        in_place_view_ = {};
    }
    // A compressed message is measured by what it inflates to, as it inflates (the frame
    // limit still bounds the compressed bytes).
    if (!message_encoded_ && message_.size() + header.payload_length > options_.max_message_bytes) {
        fail(CloseCode::MessageTooBig, "message too big");
        return false;
    }
    return true;
}

bool Connection::on_frame_payload(std::uint8_t* data, std::size_t size) {
    if (frame_is_control_) {
        control_.append(reinterpret_cast<const char*>(data), size);
        return true;
    }
    if (message_encoded_) return decode({reinterpret_cast<const char*>(data), size}, false);
    // Section 8.1: fail as soon as the text cannot be valid UTF-8, not at the message end.
    if (message_type_ == MessageType::Text && !utf8_.feed(data, size)) {
        fail(CloseCode::InvalidPayload, "text message is not valid UTF-8");
        return false;
    }
    if (frame_in_place_ && in_place_view_.empty() && message_.empty()) {
        in_place_view_ = {reinterpret_cast<const char*>(data), size};
        return true;
    }
    if (frame_in_place_ && !in_place_view_.empty()) {
        // The payload arrived in more than one piece after all: fall back to copying.
        message_.append(in_place_view_);
        in_place_view_ = {};
        frame_in_place_ = false;
    }
    message_.append(reinterpret_cast<const char*>(data), size);
    return true;
}

bool Connection::on_frame_end(const codec::FrameHeader& header) {
    if (frame_is_control_) {
        switch (header.opcode) {
            case Opcode::Ping:
                // Section 5.5.2: answer with a pong carrying the same payload.
                if (options_.auto_pong && !close_sent_) send_pong(control_);
                if (handler_) handler_->on_ping(control_);
                break;
            case Opcode::Pong:
                if (handler_) handler_->on_pong(control_);
                break;
            case Opcode::Close:
                handle_close_frame(control_);
                return state_ != State::Closed;
            default:
                break;
        }
        return state_ != State::Closed;
    }
    if (!header.fin) return true;
    if (message_encoded_ && !decode({}, true)) return false;
    if (message_type_ == MessageType::Text && !utf8_.complete()) {
        fail(CloseCode::InvalidPayload, "text message ends inside a UTF-8 sequence");
        return false;
    }
    in_message_ = false;
    const std::string_view data = frame_in_place_ ? in_place_view_ : std::string_view{message_};
    frame_in_place_ = false;
    in_place_view_ = {};
    if (handler_) handler_->on_message(data, message_type_);
    // Keep the buffer's capacity for the next message, unless one huge message inflated it.
    // Up to 4 MiB: a 1 MiB message grows it to 2 MiB, and giving that back after each one
    // cost the thread engine ~700 page faults and 60% of its speed per 1 MiB echo (glibc
    // trims a thread arena's top at once); an engine gives it back anyway once the client
    // has been quiet for 500 ms (release_buffers()).
    if (message_.capacity() > kKeptMessageCapacity) std::string().swap(message_);
    else message_.clear();
    return state_ != State::Closed;
}

bool Connection::decode(std::string_view piece, bool final) {
    const std::size_t before = message_.size();
    const auto status = incoming_->decode(piece, final, message_, options_.max_message_bytes);
    if (status == ExtensionStatus::TooBig) {
        fail(CloseCode::MessageTooBig, "message too big once decoded");
        return false;
    }
    if (status == ExtensionStatus::Invalid) {
        fail(CloseCode::InvalidPayload, "invalid extension data");
        return false;
    }
    // Section 8.1 on the decoded text, piece by piece: still fail fast.
    if (message_type_ == MessageType::Text &&
        !utf8_.feed(reinterpret_cast<const std::uint8_t*>(message_.data()) + before, message_.size() - before)) {
        fail(CloseCode::InvalidPayload, "text message is not valid UTF-8");
        return false;
    }
    return true;
}

void Connection::release_buffers() noexcept {
    if (output_.empty()) std::string().swap(output_);
    std::string().swap(encoded_);
    if (!in_message_ && !frame_in_place_ && decoder_.at_frame_boundary()) {
        std::string().swap(message_);
        std::string().swap(control_);
    }
}

bool Connection::at_rest() const noexcept {
    return state_ == State::Open && !close_sent_ && !close_received_ && !failed_ && !in_message_ && !frame_in_place_ &&
           decoder_.at_frame_boundary() && output_.empty() && incoming_ == nullptr && outgoing_ == nullptr &&
           extension_rsv_ == 0;
}

void Connection::set_extension(std::unique_ptr<Extension> incoming, std::unique_ptr<Extension> outgoing) {
    incoming_ = std::move(incoming);
    outgoing_ = std::move(outgoing);
    extension_rsv_ = incoming_ ? incoming_->rsv_bits() : outgoing_ ? outgoing_->rsv_bits() : 0;
    decoder_.set_allowed_rsv(incoming_ ? extension_rsv_ : 0);
}

void Connection::handle_close_frame(std::string_view payload) {
    codec::ClosePayload parsed;
    codec::ClosePayloadError error{};
    if (!codec::parse_close_payload(payload, parsed, error)) {
        fail(error.code, error.reason);
        return;
    }
    close_received_ = true;
    if (!close_sent_) {
        // Section 5.5.1: echo the status code we received (nothing when there was none).
        close_code_ = parsed.code;
        close_reason_.assign(parsed.reason);
        append_frame(Opcode::Close, true, codec::make_close_payload(parsed.code, {}));
        close_sent_ = true;
    }
    state_ = State::Closed;
    if (handler_) handler_->on_peer_close(parsed.code, parsed.reason);
}

void Connection::append_frame(Opcode opcode, bool fin, std::string_view payload, std::uint8_t rsv) {
    if (options_.role == codec::Role::Client) {
        // Section 5.3: a fresh, unpredictable masking key for every client frame.
        std::uint8_t mask[4];
        if (RAND_bytes(mask, sizeof mask) != 1) {
            for (auto& byte : mask) byte = 0x5A;  // never reached with a working OpenSSL
        }
        codec::append_frame(output_, opcode, fin, payload, mask, rsv);
    } else {
        codec::append_frame(output_, opcode, fin, payload, nullptr, rsv);
    }
}

bool Connection::send_message(std::string_view data, MessageType type) {
    return send_fragmented(data, type, 0);
}

bool Connection::send_fragmented(std::string_view data, MessageType type, std::size_t fragment_size) {
    if (close_sent_) return false;
    std::uint8_t rsv = 0;
    if (outgoing_) {
        encoded_.clear();
        if (outgoing_->encode(data, encoded_)) {
            data = encoded_;
            rsv = outgoing_->rsv_bits();  // on the first frame only (RFC 7692 section 6)
        }
    }
    if (fragment_size == 0) fragment_size = std::max<std::size_t>(data.size(), 1);
    Opcode opcode = type == MessageType::Text ? Opcode::Text : Opcode::Binary;
    do {
        const std::string_view piece = data.substr(0, fragment_size);
        data.remove_prefix(piece.size());
        append_frame(opcode, data.empty(), piece, rsv);
        opcode = Opcode::Continuation;
        rsv = 0;
    } while (!data.empty());
    return true;
}

bool Connection::send_ping(std::string_view payload) {
    if (close_sent_ || payload.size() > codec::kMaxControlPayload) return false;
    append_frame(Opcode::Ping, true, payload);
    return true;
}

bool Connection::send_pong(std::string_view payload) {
    if (close_sent_ || payload.size() > codec::kMaxControlPayload) return false;
    append_frame(Opcode::Pong, true, payload);
    return true;
}

void Connection::close(CloseCode code, std::string_view reason) {
    if (close_sent_ || state_ == State::Closed) return;
    append_frame(Opcode::Close, true, codec::make_close_payload(code, reason));
    close_sent_ = true;
    close_code_ = code;
    close_reason_.assign(reason);
    state_ = close_received_ ? State::Closed : State::Closing;
}

void Connection::fail(CloseCode code, std::string_view reason) {
    if (state_ == State::Closed) return;
    failed_ = true;
    if (!close_sent_) {
        append_frame(Opcode::Close, true, codec::make_close_payload(code, reason));
        close_sent_ = true;
    }
    close_code_ = code;
    close_reason_.assign(reason);
    state_ = State::Closed;
}

}  // namespace websock
