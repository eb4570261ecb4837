// A scripted WebSocket server for the WebSocketClient's tests (test_client_*.cpp): a raw TCP
// listener on 127.0.0.1, port 0, that answers one client's upgrade and then lets the test
// write exact bytes (several frames in one write, frames no correct server sends) and read
// back the client's frames in the order they arrived. It shares no code with the library's
// frame codec, so it can judge it. Every wait has a deadline.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "test/unit/test_util.hpp"

namespace client_test {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Generous: a wait that fails means a bug, and sanitizers slow everything down.
inline milliseconds patience() { return milliseconds(test_util::kSanitized ? 20000 : 5000); }

/// A server frame (never masked) with the first byte given whole: FIN, RSV bits and opcode,
/// so tests can build frames a correct server never sends. Payloads up to 64 KiB.
inline std::string server_frame(std::uint8_t first_byte, std::string_view payload = {}) {
    std::string out(1, static_cast<char>(first_byte));
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(payload.size()));
    } else {
        out.push_back(static_cast<char>(126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xFF));
    }
    out.append(payload);
    return out;
}

inline std::string text_frame(std::string_view text) { return server_frame(0x81, text); }

inline std::string close_frame(int code, std::string_view reason = {}) {
    std::string payload;
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xFF));
    payload.append(reason);
    return server_frame(0x88, payload);
}

/// One frame the client sent, unmasked.
struct ClientFrame {
    bool fin = false;
    int rsv = 0;     // the three RSV bits, RSV1 highest
    int opcode = 0;
    bool masked = false;
    std::string payload;

    bool is_close() const { return opcode == 0x8; }
    int close_code() const {
        return payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]) : 0;
    }
    /// "text 'hi'", "close 1002", "opcode 9 'p'": what a test compares and a failure prints.
    std::string describe() const {
        if (opcode == 0x1) return "text '" + payload + "'";
        if (is_close()) return "close " + std::to_string(close_code());
        return "opcode " + std::to_string(opcode) + " '" + payload + "'";
    }
};

/// The client's frames, in order, as one string for a failure message.
inline std::string describe(const std::vector<ClientFrame>& frames) {
    std::string out = "[";
    for (const auto& frame : frames) out += (out.size() > 1 ? ", " : "") + frame.describe();
    return out + "]";
}

/// Listens on 127.0.0.1 (port 0) and, on a thread of its own, accepts one client and answers
/// its upgrade with a valid 101 (so connect() can run on the test's thread). peer() waits for
/// that; then the test talks to the client through write() and read_frame().
class RawServer {
public:
    RawServer() {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listener_ < 0) throw std::runtime_error("socket failed");
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = 0;
        socklen_t length = sizeof address;
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener_, 4) != 0 ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
            throw std::runtime_error("cannot listen on 127.0.0.1");
        port_ = ntohs(address.sin_port);
        acceptor_ = std::thread([this] { accept_and_upgrade(); });
    }

    ~RawServer() {
        if (acceptor_.joinable()) acceptor_.join();
        close_peer();
        ::close(listener_);
    }

    RawServer(const RawServer&) = delete;
    RawServer& operator=(const RawServer&) = delete;

    std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/"; }

    /// True once a client has connected and been sent its 101 (waits for the acceptor).
    bool peer() {
        if (acceptor_.joinable()) acceptor_.join();
        return peer_ >= 0 && upgraded_;
    }

    /// Everything in one send(), so the client finds it all in one read.
    bool write(std::string_view bytes) {
        const ssize_t sent = ::send(peer_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        return sent == static_cast<ssize_t>(bytes.size());
    }

    /// The client's next frame; nullopt at EOF, on an error or at the deadline.
    std::optional<ClientFrame> read_frame(Clock::time_point deadline) {
        for (;;) {
            if (auto frame = parse_frame()) return frame;
            if (!fill(deadline)) return std::nullopt;
        }
    }

    /// The client's frames up to and including its close frame (or until EOF or the deadline).
    std::vector<ClientFrame> read_until_close(Clock::time_point deadline) {
        std::vector<ClientFrame> frames;
        while (auto frame = read_frame(deadline)) {
            frames.push_back(std::move(*frame));
            if (frames.back().is_close()) break;
        }
        return frames;
    }

    /// True when the client closes TCP (EOF) before the deadline; anything it sends first is
    /// skipped.
    bool wait_eof(Clock::time_point deadline) {
        while (fill(deadline)) pending_.clear();
        return eof_;
    }

    /// The server closes TCP first, as section 7.1.1 wants.
    void close_peer() {
        if (peer_ >= 0) ::close(peer_);
        peer_ = -1;
    }

private:
    void accept_and_upgrade() {
        const auto deadline = Clock::now() + patience();
        if (!wait_for(listener_, POLLIN, deadline)) return;
        peer_ = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (peer_ < 0) return;
        const int one = 1;
        ::setsockopt(peer_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::size_t end;
        while ((end = pending_.find("\r\n\r\n")) == std::string::npos)
            if (!fill(deadline)) return;
        const std::string request = pending_.substr(0, end + 4);
        pending_.erase(0, end + 4);
        const std::string key = header(request, "sec-websocket-key");
        if (key.empty()) return;
        upgraded_ = write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: " + accept_for(key) + "\r\n\r\n");
    }

    static bool wait_for(int fd, short events, Clock::time_point deadline) {
        for (;;) {
            const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
            if (left < 0) return false;
            pollfd p{fd, events, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left) + 1);
            if (ready > 0) return true;
            if (ready == 0 && Clock::now() >= deadline) return false;
        }
    }

    /// Read what the client sent into pending_; false at EOF, on an error or at the deadline.
    bool fill(Clock::time_point deadline) {
        if (peer_ < 0 || eof_ || !wait_for(peer_, POLLIN, deadline)) return false;
        char buffer[4096];
        const ssize_t got = ::recv(peer_, buffer, sizeof buffer, 0);
        if (got <= 0) {
            eof_ = true;
            return false;
        }
        pending_.append(buffer, static_cast<std::size_t>(got));
        return true;
    }

    /// A whole frame off the front of pending_, if one is there.
    std::optional<ClientFrame> parse_frame() {
        const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(pending_[i]); };
        if (pending_.size() < 2) return std::nullopt;
        ClientFrame frame;
        frame.fin = (byte(0) & 0x80) != 0;
        frame.rsv = (byte(0) >> 4) & 0x7;
        frame.opcode = byte(0) & 0x0F;
        frame.masked = (byte(1) & 0x80) != 0;
        std::uint64_t length = byte(1) & 0x7F;
        std::size_t at = 2;
        const std::size_t extra = length == 126 ? 2 : length == 127 ? 8 : 0;
        if (pending_.size() < at + extra) return std::nullopt;
        if (extra > 0) {
            length = 0;
            for (std::size_t i = 0; i < extra; ++i) length = (length << 8) | byte(at + i);
            at += extra;
        }
        const std::size_t mask_at = at;
        if (frame.masked) at += 4;
        if (pending_.size() < at + length) return std::nullopt;
        frame.payload = pending_.substr(at, length);
        if (frame.masked)
            for (std::size_t i = 0; i < frame.payload.size(); ++i) frame.payload[i] ^= pending_[mask_at + i % 4];
        pending_.erase(0, at + length);
        return frame;
    }

    static std::string header(const std::string& request, std::string_view name) {
        std::string lower = request;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        const std::string needle = "\r\n" + std::string(name) + ":";
        const std::size_t at = lower.find(needle);
        if (at == std::string::npos) return {};
        std::size_t start = at + needle.size();
        const std::size_t end = request.find("\r\n", start);
        while (start < end && request[start] == ' ') ++start;
        return request.substr(start, end - start);
    }

    /// Sec-WebSocket-Accept (RFC 6455 section 4.2.2), computed here rather than by the library.
    static std::string accept_for(const std::string& key) {
        const std::string input = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char digest[SHA_DIGEST_LENGTH];
        SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
        unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
        const int length = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
        return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(length));
    }

    int listener_ = -1;
    int peer_ = -1;
    std::uint16_t port_ = 0;
    bool upgraded_ = false;
    bool eof_ = false;
    std::string pending_;  // read from the client, not yet parsed
    std::thread acceptor_;
};

}  // namespace client_test
