// client_probe: a WebSocketClient driven line by line from stdin, reporting every event as
// one JSON line on stdout. test/integration/client.test.mjs runs it against websock's echo
// server, Node's ws server and raw sockets.
//
//   client_probe URL [--protocol P]... [--no-require-subprotocol] [--origin O] [--user U]
//                [--ca-file PEM] [--insecure]
//                [--password P] [--header 'Name: value']... [--receive-mode]
//                [--ping-interval MS] [--pong-timeout MS] [--close-timeout MS]
//                [--connect-timeout MS] [--handshake-timeout MS] [--max-message-bytes N]
//                [--max-receive-queue-bytes N] [--max-outbound-queue-bytes N] [--queue-policy drop|close]
//
// Commands (one per line; payloads in hex, possibly empty):
//   send text|binary HEX    ping HEX    close CODE REASON_HEX
//   receive MS              (receive mode: wait up to MS for a message; receive_for())
//   wait-closed MS          status          exit
//   burst THREADS COUNT     (THREADS threads send COUNT messages "t<thread> <i>" each at once)
//   flood SIZE COUNT        (COUNT binary messages of SIZE bytes, as fast as send() returns)
// A received text message "reply:X" is answered with X, "close:R" with close(1000, R), both
// from inside on_message.
// Events: {"event":"connect","ok":...}, open, message, ping, pong, error, close, result,
// received, receive-timeout (still open), receive-closed (ended, nothing left), wait-closed,
// status (with close_code and initiator once closed), exit. A message event carries type, size,
// sha256 and (up to 4 KiB) the hex bytes. After a failed connect the probe exits 0.
#include <openssl/sha.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "websock/client.hpp"

namespace {

std::mutex g_output;

void emit(const std::string& line) {
    std::lock_guard lock(g_output);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (byte < 0x20) out += fmt::format("\\u{:04x}", byte);
                else out += c;  // UTF-8 passes through (reasons are valid UTF-8)
        }
    }
    return out + "\"";
}

std::string to_hex(std::string_view data) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(data.size() * 2);
    for (const char c : data) {
        const auto byte = static_cast<unsigned char>(c);
        out.push_back(digits[byte >> 4]);
        out.push_back(digits[byte & 15]);
    }
    return out;
}

bool from_hex(std::string_view hex, std::string& out) {
    auto value = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (hex.size() % 2 != 0) return false;
    out.clear();
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = value(hex[i]);
        const int lo = value(hex[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    return true;
}

std::string sha256_hex(std::string_view data) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    return to_hex(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string message_fields(std::string_view data, websock::MessageType type) {
    return fmt::format("\"type\":\"{}\",\"size\":{},\"sha256\":\"{}\",\"hex\":{}",
                       type == websock::MessageType::Text ? "text" : "binary", data.size(), sha256_hex(data),
                       data.size() <= 4096 ? json_string(to_hex(data)) : "null");
}

std::string_view result_name(websock::SendResult result) {
    switch (result) {
        case websock::SendResult::Queued: return "Queued";
        case websock::SendResult::Dropped: return "Dropped";
        case websock::SendResult::Closed: return "Closed";
    }
    return "?";
}

void emit_result(std::string_view command, websock::SendResult result) {
    emit(fmt::format("{{\"event\":\"result\",\"cmd\":{},\"result\":\"{}\"}}", json_string(command), result_name(result)));
}

/// Split off the next space-separated word of `line`.
std::string_view next_word(std::string_view& line) {
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    const std::size_t space = line.find(' ');
    const std::string_view word = line.substr(0, space);
    line.remove_prefix(space == std::string_view::npos ? line.size() : space);
    return word;
}

int usage() {
    std::fputs("usage: client_probe URL [--protocol P]... [--no-require-subprotocol] [--origin O] [--user U] [--password P]\n"
               "       [--header 'Name: value']... [--receive-mode] [--ping-interval MS] [--pong-timeout MS]\n"
               "       [--close-timeout MS] [--connect-timeout MS] [--handshake-timeout MS] [--max-message-bytes N]\n"
               "       [--max-receive-queue-bytes N] [--max-outbound-queue-bytes N] [--queue-policy drop|close]\n",
               stderr);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    using websock::Milliseconds;
    websock::ClientOptions options;
    std::string url;
    bool receive_mode = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        auto millis = [&] { return Milliseconds{std::atoll(argv[++i])}; };
        if (arg == "--protocol" && has_value) options.subprotocols.emplace_back(argv[++i]);
        else if (arg == "--no-require-subprotocol") options.require_subprotocol = false;
        else if (arg == "--origin" && has_value) options.origin = argv[++i];
        else if (arg == "--ca-file" && has_value) options.tls_ca_file = argv[++i];
        else if (arg == "--insecure") options.tls_verify = false;
        else if (arg == "--deflate") options.deflate.enabled = true;
        else if (arg == "--user" && has_value) options.basic_auth_user = argv[++i];
        else if (arg == "--password" && has_value) options.basic_auth_password = argv[++i];
        else if (arg == "--header" && has_value) {
            const std::string_view header = argv[++i];
            const std::size_t colon = header.find(':');
            if (colon == std::string_view::npos) return usage();
            std::string_view value = header.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            options.extra_headers.emplace_back(std::string(header.substr(0, colon)), std::string(value));
        } else if (arg == "--receive-mode") receive_mode = true;
        else if (arg == "--ping-interval" && has_value) options.ping_interval = millis();
        else if (arg == "--pong-timeout" && has_value) options.pong_timeout = millis();
        else if (arg == "--close-timeout" && has_value) options.close_timeout = millis();
        else if (arg == "--connect-timeout" && has_value) options.connect_timeout = millis();
        else if (arg == "--handshake-timeout" && has_value) options.handshake_timeout = millis();
        else if (arg == "--max-outbound-queue-bytes" && has_value) options.max_outbound_queue_bytes = std::strtoull(argv[++i], nullptr, 10);
        else if (arg == "--queue-policy" && has_value)
            options.queue_full_policy = std::string_view(argv[++i]) == "drop" ? websock::QueueFullPolicy::Drop : websock::QueueFullPolicy::Close;
        else if (arg == "--max-receive-queue-bytes" && has_value) options.max_receive_queue_bytes = std::strtoull(argv[++i], nullptr, 10);
        else if (arg == "--max-message-bytes" && has_value) {
            options.max_message_bytes = std::strtoull(argv[++i], nullptr, 10);
            options.max_frame_bytes = options.max_message_bytes;
        } else if (url.empty() && !arg.starts_with("--")) url = arg;
        else return usage();
    }
    if (url.empty()) return usage();

    {
        websock::WebSocketClient client{options};
        client.on_open([] { emit(R"({"event":"open"})"); });
        if (!receive_mode)
            client.on_message([&client](std::string_view data, websock::MessageType type) {
                emit(fmt::format("{{\"event\":\"message\",{}}}", message_fields(data, type)));
                // Sends and closes from inside a callback (on the I/O thread itself).
                if (type == websock::MessageType::Text && data.starts_with("reply:")) client.send(data.substr(6));
                if (type == websock::MessageType::Text && data.starts_with("close:"))
                    client.close(websock::CloseCode::Normal, data.substr(6));
            });
        client.on_ping([](std::string_view payload) { emit(fmt::format("{{\"event\":\"ping\",\"hex\":\"{}\"}}", to_hex(payload))); });
        client.on_pong([](std::string_view payload) { emit(fmt::format("{{\"event\":\"pong\",\"hex\":\"{}\"}}", to_hex(payload))); });
        client.on_error([](const websock::Error& error) {
            emit(fmt::format("{{\"event\":\"error\",\"kind\":\"{}\",\"message\":{}}}", websock::to_string(error.kind),
                             json_string(error.message)));
        });
        client.on_close([](websock::CloseCode code, std::string_view reason) {
            emit(fmt::format("{{\"event\":\"close\",\"code\":{},\"reason\":{}}}", static_cast<int>(code), json_string(reason)));
        });

        const auto started = std::chrono::steady_clock::now();
        const bool connected = client.connect(url);
        const auto elapsed =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
        if (!connected) {
            const auto error = client.last_error();
            emit(fmt::format("{{\"event\":\"connect\",\"ok\":false,\"kind\":\"{}\",\"error\":{},\"ms\":{}}}",
                             websock::to_string(error.kind), json_string(error.message), elapsed));
            emit(R"({"event":"exit"})");
            return 0;
        }
        emit(fmt::format("{{\"event\":\"connect\",\"ok\":true,\"subprotocol\":{},\"ms\":{}}}", json_string(client.subprotocol()),
                         elapsed));

        std::string line;
        std::string payload;
        while (std::getline(std::cin, line)) {
            std::string_view rest = line;
            const std::string_view command = next_word(rest);
            if (command == "exit") break;
            if (command == "send") {
                const std::string_view kind = next_word(rest);
                if (!from_hex(next_word(rest), payload)) {
                    emit(R"({"event":"bad-command"})");
                    continue;
                }
                emit_result("send", client.send(payload, kind == "binary" ? websock::MessageType::Binary : websock::MessageType::Text));
            } else if (command == "ping") {
                if (!from_hex(next_word(rest), payload)) {
                    emit(R"({"event":"bad-command"})");
                    continue;
                }
                emit_result("ping", client.ping(payload));
            } else if (command == "close") {
                const int code = std::atoi(std::string(next_word(rest)).c_str());
                if (!from_hex(next_word(rest), payload)) {
                    emit(R"({"event":"bad-command"})");
                    continue;
                }
                emit_result("close", client.close(static_cast<websock::CloseCode>(code), payload));
            } else if (command == "receive") {
                const auto timeout = Milliseconds{std::atoll(std::string(next_word(rest)).c_str())};
                const auto result = client.receive_for(timeout);
                if (result.status == websock::ReceiveStatus::Message)
                    emit(fmt::format("{{\"event\":\"received\",{}}}", message_fields(result.message.data, result.message.type)));
                else
                    emit(fmt::format("{{\"event\":\"{}\",\"open\":{}}}",
                                     result.status == websock::ReceiveStatus::Timeout ? "receive-timeout" : "receive-closed",
                                     client.is_open()));
            } else if (command == "wait-closed") {
                const auto timeout = Milliseconds{std::atoll(std::string(next_word(rest)).c_str())};
                const bool closed = client.wait_closed(timeout);
                emit(fmt::format("{{\"event\":\"wait-closed\",\"closed\":{}}}", closed));
            } else if (command == "burst") {
                // THREADS threads send COUNT text messages "t<thread> <i>" each, all at once.
                const int threads = std::atoi(std::string(next_word(rest)).c_str());
                const int count = std::atoi(std::string(next_word(rest)).c_str());
                std::atomic<int> queued{0};
                std::vector<std::thread> senders;
                for (int t = 0; t < threads; ++t)
                    senders.emplace_back([&, t] {
                        for (int i = 0; i < count; ++i)
                            if (client.send(fmt::format("t{} {}", t, i)) == websock::SendResult::Queued) ++queued;
                    });
                for (auto& sender : senders) sender.join();
                emit(fmt::format("{{\"event\":\"burst\",\"queued\":{}}}", queued.load()));
            } else if (command == "flood") {
                const std::size_t size = std::strtoull(std::string(next_word(rest)).c_str(), nullptr, 10);
                const int count = std::atoi(std::string(next_word(rest)).c_str());
                const std::string data(size, 'f');
                int results[3] = {0, 0, 0};
                for (int i = 0; i < count; ++i) ++results[static_cast<int>(client.send_binary(data))];
                emit(fmt::format("{{\"event\":\"flood\",\"queued\":{},\"dropped\":{},\"closed\":{}}}", results[0], results[1],
                                 results[2]));
            } else if (command == "status") {
                const auto status = client.close_status();
                emit(fmt::format("{{\"event\":\"status\",\"open\":{},\"queued\":{},\"close_code\":{},\"initiator\":{}}}",
                                 client.is_open(), client.queued_bytes(), status ? static_cast<int>(status->code) : 0,
                                 status ? json_string(websock::to_string(status->initiator)) : "null"));
            } else {
                emit(R"({"event":"bad-command"})");
            }
        }
        // The destructor closes (1000) if still open and joins the I/O thread.
    }
    emit(R"({"event":"exit"})");
    return 0;
}
