// ClientDriver's HTTP phase: reading and parsing requests (pipelined ones in order), the
// upgrade decision and extension negotiation, plain HTTP answers (inline or from an async
// responder) and opening the WebSocket. The rest of the driver is in client_driver.cpp.
#include "websock/detail/client_driver.hpp"
#include "websock/detail/packed_request.hpp"

#include <fmt/format.h>

namespace websock::detail {

// ---- handshake -------------------------------------------------------------------------------

void ClientDriver::read_handshake() {
    for (int reads = 0; reads < kReadsPerEvent && phase_ == Phase::Handshake && wants_read(); ++reads) {
        const auto got = io_->read(read_buffer_.data(), read_buffer_.size());
        if (got.status == IoResult::Status::WouldBlock) return;
        if (got.status != IoResult::Status::Ok) {
            finish();  // the peer left before upgrading
            return;
        }
        std::string& input = http().input;
        input.append(reinterpret_cast<const char*>(read_buffer_.data()), got.bytes);
        if (awaiting_http_ && input.size() > kMaxPendingHttpBytes) {
            // Pipelining without end behind a request that waits for its answer.
            server_.report(nullptr, ErrorKind::Limit, fmt::format("{}: too many pipelined HTTP requests", core_.peer));
            finish();
            return;
        }
        parse_requests();
        if (phase_ == Phase::Open) return take_early_frames();
    }
}

void ClientDriver::take_early_frames() {
    // Frames the client sent right behind its upgrade request. The HTTP state goes first:
    // an open connection keeps no request bytes, nor their room.
    const auto state = std::move(http_);
    if (state && !state->input.empty()) feed(reinterpret_cast<std::uint8_t*>(state->input.data()), state->input.size());
}

codec::HttpRequestParser& ClientDriver::parser() {
    // Made when a request's bytes come, not at accept, so that it is made and freed within
    // one event most often: the next connection's handshake then reuses the same memory.
    HttpState& state = http();
    if (!state.parser)
        state.parser = std::make_unique<codec::HttpRequestParser>(codec::HttpRequestParser::Options{
            server_.options.max_handshake_bytes, server_.options.max_http_body_bytes});
    return *state.parser;
}

void ClientDriver::parse_requests() {
    // Every complete request in the input, pipelined plain HTTP requests included; a request
    // waiting for an asynchronous answer holds back the ones behind it.
    parse_held_back_ = false;
    while (phase_ == Phase::Handshake && !close_after_write_ && !awaiting_http_ && http_ && !http_->input.empty()) {
        if (write_buffer_.size() - write_offset_ >= kMaxPendingHttpBytes) {
            // The client reads its answers slower than it pipelines requests: the rest waits
            // until these are written (after_io() goes on then), so that a few KiB of small
            // requests cannot pile up answers without bound.
            parse_held_back_ = true;
            break;
        }
        std::size_t consumed = 0;
        codec::HttpRequestParser& parser = this->parser();
        std::string& input = http_->input;
        const auto status = parser.feed(input.data(), input.size(), consumed);
        input.erase(0, consumed);
        if (status == codec::HttpRequestParser::Status::NeedMore) break;
        if (status == codec::HttpRequestParser::Status::Error) {
            refuse(parser.error_status(), parser.error_reason());
            break;
        }
        handle_request(parser);  // may end the parser (next_request(), open_websocket())
    }
}

void ClientDriver::handle_request(codec::HttpRequestParser& parser) {
    HttpRequest& request = parser.request();
    request.peer_address = core_.peer;
    const auto& options = server_.options;
    if (!parser.is_upgrade()) return answer_http(request, parser.keep_alive() && !server_.stopping.load());
    auto check = codec::check_upgrade_request(request);
    if (!check.ok) return refuse(check.status, check.reason);
    if (server_.stopping.load()) return refuse(503, "server shutting down");
    auto decision = decide(request);
    if (!decision.accept) return refuse(decision.status, decision.body, decision.headers);
    // Count this client against max_clients before answering, so the limit holds under a
    // burst of simultaneous upgrades.
    if (server_.open_count.fetch_add(1) >= options.max_clients) {
        server_.open_count.fetch_sub(1);
        return refuse(503, "too many clients", {{"Retry-After", "5"}});
    }
    counted_ = true;
    HttpHeaders headers;
    if (!decision.subprotocol.empty()) headers.emplace_back("Sec-WebSocket-Protocol", decision.subprotocol);
    negotiate_extensions(request, headers);
    for (auto& header : decision.headers) headers.push_back(std::move(header));
    if (!decision.subprotocol.empty()) core_.rare().subprotocol = std::move(decision.subprotocol);
    open_websocket(check.key, request, headers);
}

void ClientDriver::negotiate_extensions(const HttpRequest& request, HttpHeaders& headers) {
    const auto& options = server_.options;
    if (!options.deflate.enabled && options.extensions.empty()) return;
    // A header that does not parse means no extension (never a broken response).
    const std::string offered = request.header_joined("Sec-WebSocket-Extensions");
    if (offered.empty()) return;
    const auto parsed = codec::parse_extensions(offered);
    if (!parsed.ok()) return;
    // One extension per connection: the first factory that agrees (permessage-deflate first).
    auto try_factory = [&](ExtensionFactory& factory) {
        auto agreed = factory.negotiate(parsed.offers);
        if (!agreed) return false;
        headers.emplace_back("Sec-WebSocket-Extensions", std::move(agreed->response_element));
        connection().set_extension(std::move(agreed->incoming), nullptr);
        core_.rare().extension = std::move(agreed->outgoing);
        return true;
    };
    if (server_.deflate_factory && try_factory(*server_.deflate_factory)) return;  // made by listen()
    for (const auto& factory : options.extensions)
        if (factory && try_factory(*factory)) return;
}

HandshakeDecision ClientDriver::decide(const HttpRequest& request) {
    const std::string offered = request.header_joined("Sec-WebSocket-Protocol");  // the views below point into it
    HandshakeRequest view{request, core_.peer, request.header("Origin"), split_tokens(offered)};
    HandshakeDecision decision = apply_policy(server_.options.policy, view);
    if (decision.accept && server_.on_handshake) {
        try {
            decision = server_.on_handshake(view, std::move(decision));
        } catch (const std::exception& e) {
            server_.report(nullptr, ErrorKind::Callback, fmt::format("on_handshake threw: {}", e.what()));
            return HandshakeDecision::rejected(500, "internal server error");
        } catch (...) {
            server_.report(nullptr, ErrorKind::Callback, "on_handshake threw a non-standard exception");
            return HandshakeDecision::rejected(500, "internal server error");
        }
    }
    if (decision.accept && !decision.subprotocol.empty()) {
        // Section 4.2.2: the server may only choose a subprotocol the client offered.
        bool offered_by_client = false;
        for (const auto protocol : view.subprotocols) offered_by_client = offered_by_client || protocol == decision.subprotocol;
        if (!offered_by_client) {
            server_.report(nullptr, ErrorKind::Handshake,
                           fmt::format("on_handshake chose subprotocol {} that the client did not offer", decision.subprotocol));
            return HandshakeDecision::rejected(500, "internal server error");
        }
    }
    return decision;
}

void ClientDriver::answer_http(HttpRequest& request, bool keep_alive) {
    const bool head = request.method == "HEAD";
    if (server_.on_http_async) {
        HttpState& state = http();
        const std::uint64_t number = ++state.requests;
        auto& rare = core_.rare();
        {
            std::lock_guard lock(core_.mutex);
            rare.http_awaited = number;
            rare.http_answer.reset();
        }
        awaiting_http_ = true;
        http_keep_alive_ = keep_alive;
        state.deadline = Clock::now() + server_.options.http_response_timeout;
        auto responder = ClientCore::make_responder(client_, number, keep_alive, head);
        try {
            server_.on_http_async(request, responder);
        } catch (const std::exception& e) {
            server_.report(nullptr, ErrorKind::Callback, fmt::format("on_http_request_async threw: {}", e.what()));
            responder->respond(HttpResponse::text(500, "internal server error\n"));
        } catch (...) {
            server_.report(nullptr, ErrorKind::Callback, "on_http_request_async threw a non-standard exception");
            responder->respond(HttpResponse::text(500, "internal server error\n"));
        }
        // Answered at once, most often. parse_requests(), our caller, goes on with the
        // requests behind this one: resuming them from here would go one call deeper per
        // pipelined request, and a burst of them overflowed a client thread's stack.
        take_http_answer(/*resume_parsing=*/false);
        return;
    }
    HttpResponse response;
    if (!server_.on_http) {
        // No HTTP handler: say that this port speaks WebSocket (RFC 9110 section 15.5.22).
        response = HttpResponse::text(426, "This is a WebSocket server; send a WebSocket upgrade request.\n");
        response.header("Upgrade", "websocket").header("Sec-WebSocket-Version", "13");
        keep_alive = false;
    } else {
        try {
            response = server_.on_http(request);
        } catch (const std::exception& e) {
            server_.report(nullptr, ErrorKind::Callback, fmt::format("on_http_request threw: {}", e.what()));
            response = HttpResponse::text(500, "internal server error\n");
            keep_alive = false;
        } catch (...) {
            server_.report(nullptr, ErrorKind::Callback, "on_http_request threw a non-standard exception");
            response = HttpResponse::text(500, "internal server error\n");
            keep_alive = false;
        }
    }
    if (head) {
        const std::size_t length = response.body.size();
        response.body.clear();
        response.header("Content-Length", std::to_string(length));
    }
    if (response_closes(response)) keep_alive = false;
    write_buffer_.append(serialize_response(response, keep_alive));
    next_request(keep_alive);
}

void ClientDriver::take_http_answer(bool resume_parsing) {
    if (!awaiting_http_) return;
    std::optional<std::string> answer;
    bool closes = false;
    {
        auto* rare = core_.rare_if_made();  // made when the request was handed out
        std::lock_guard lock(core_.mutex);
        if (rare == nullptr || !rare->http_answer) return;
        answer.swap(rare->http_answer);
        rare->http_awaited = 0;
        closes = std::exchange(rare->http_answer_closes, false);
    }
    awaiting_http_ = false;
    write_buffer_.append(*answer);
    next_request(http_keep_alive_ && !closes);
    if (!resume_parsing) return;
    parse_requests();  // pipelined requests that waited behind this one
    if (phase_ == Phase::Open) take_early_frames();  // one of them was an upgrade, maybe with frames behind it
}

void ClientDriver::next_request(bool keep_alive) {
    if (!keep_alive) {
        close_after_write_ = true;
        return;
    }
    if (http_) http_->parser.reset();  // parser() makes a new one for the next request when its bytes come
    handshake_deadline_ = Clock::now() + server_.options.handshake_timeout;
}

void ClientDriver::refuse(int status, std::string_view reason, const HttpHeaders& headers) {
    server_.report(nullptr, ErrorKind::Handshake, fmt::format("{}: refused with {}: {}", core_.peer, status, reason));
    write_buffer_.append(codec::make_handshake_error(status, reason, headers));
    close_after_write_ = true;
}

void ClientDriver::open_websocket(const std::string& key, const HttpRequest& request, const HttpHeaders& headers) {
    const std::string packed = pack_request(request);
    core_.packed_request.assign(packed.data(), packed.size());  // exactly its size, in the slab
    core_.request_packed.store(true, std::memory_order_release);
    write_buffer_.append(codec::make_upgrade_response(key, headers));  // before anything on_open sends
    release_written_ = true;  // an idle connection keeps no handshake bytes, nor their room
    if (http_) http_->parser.reset();  // the rest goes with take_early_frames()
    phase_ = Phase::Open;
    last_heard_ = Clock::now();
    opened_ = true;
    core_.open.store(true, std::memory_order_release);
    server_.invoke(client_.get(), "on_connection_open", server_.on_open, *client_);
}

}  // namespace websock::detail
