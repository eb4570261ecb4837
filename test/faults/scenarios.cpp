#include "test/faults/scenarios.hpp"

#include <atomic>
#include <thread>

namespace faults {
namespace {

SSL_CTX* tls_of(ServerUnderTest& server) { return server.tls() ? client_tls_context() : nullptr; }

/// The client's side of a clean end: close frame, the server's close frame, then its FIN.
bool close_cleanly(RawClient& client) {
    if (!client.send_close(1000, "done")) return false;
    if (client.read_message()) return false;  // a data message where the close should be
    const auto close = client.last_close();
    return close && close->payload.size() >= 2 && client.wait_eof();
}

bool plain_http(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    // Two requests on one keep-alive connection, then one that asks to close.
    for (int i = 0; i < 2; ++i) {
        if (!client.send_raw("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) return false;
        const auto answer = client.read_http();
        if (!answer || answer->status != 200 || answer->body.find("plain answer") == std::string::npos) return false;
    }
    if (!client.send_raw("GET /bye HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")) return false;
    const auto last = client.read_http();
    return last && last->status == 200 && client.wait_eof();
}

bool async_http(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    // Pipelined: the answer made later on another thread must still come first.
    if (!client.send_raw("GET /async HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /now HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        return false;
    const auto first = client.read_http();
    const auto second = client.read_http();
    return first && first->body == "answered later\n" && second && second->body == "plain answer\n";
}

bool upgrade_only(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    return client.upgrade("/chat") && close_cleanly(client);
}

bool echo_small(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    if (!client.upgrade()) return false;
    for (int i = 0; i < 40; ++i) {
        const std::string message = "message " + std::to_string(i) + std::string(static_cast<std::size_t>(i * 7), 'x');
        if (!client.send_frame(0x1, message)) return false;
        const auto echo = client.read_message();
        if (!echo || *echo != message) return false;
    }
    return close_cleanly(client);
}

bool echo_large(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    if (!client.upgrade()) return false;
    std::string message(1u << 20, '\0');
    for (std::size_t i = 0; i < message.size(); ++i) message[i] = static_cast<char>(i * 31 + (i >> 12));
    for (int round = 0; round < 2; ++round) {
        // Send and read at once: the echo can start before the whole message is in.
        std::atomic<bool> sent{false};
        std::thread sender([&] { sent = client.send_frame(0x2, message); });
        const auto echo = client.read_message();
        sender.join();
        if (!sent || !echo || *echo != message) return false;
    }
    return close_cleanly(client);
}

bool fragmented_with_ping(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    if (!client.upgrade()) return false;
    if (!client.send_frame(0x1, "frag", false) || !client.send_frame(0x9, "are you there") ||
        !client.send_frame(0x0, "men", false) || !client.send_frame(0x0, "ted", true))
        return false;
    // The pong comes first (section 5.5.3: as soon as practical), then the whole message.
    const auto pong = client.read_frame();
    if (!pong || pong->opcode != 0xA || pong->payload != "are you there") return false;
    const auto echo = client.read_message();
    return echo && *echo == "fragmented" && close_cleanly(client);
}

bool send_from_another_thread(ServerUnderTest& server) {
    const std::size_t before = server.opened();
    RawClient client(server.port(), tls_of(server));
    if (!client.upgrade() || !server.wait_opened(before + 1)) return false;
    auto handle = server.latest_client();
    if (!handle) return false;
    // An echo first, so that the server has written everything it had: then the thread
    // engine's sends from this thread go straight to the socket (direct sends).
    if (!client.send_frame(0x1, "ready") || client.read_message() != "ready") return false;
    for (int i = 0; i < 20; ++i)
        if (handle->send("pushed " + std::to_string(i)) != websock::SendResult::Queued) return false;
    handle.reset();
    for (int i = 0; i < 20; ++i) {
        const auto message = client.read_message();
        if (!message || *message != "pushed " + std::to_string(i)) return false;
    }
    return close_cleanly(client);
}

bool peer_close(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    return client.upgrade() && client.send_frame(0x1, "before closing") && client.read_message() == "before closing" &&
           close_cleanly(client);
}

bool server_close(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    if (!client.upgrade() || !client.send_frame(0x1, "close-me")) return false;
    if (client.read_message()) return false;  // expect the server's close frame
    const auto close = client.last_close();
    if (!close || close->payload.size() < 2) return false;
    return client.send_close(1000) && client.wait_eof();
}

bool lingering(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    if (!client.upgrade() || !client.send_close(1000)) return false;
    const auto close = client.read_frame();
    if (!close || close->opcode != 0x8) return false;
    // The server has half-closed and lingers; what we still send is read and dropped.
    for (int i = 0; i < 5; ++i)
        if (!client.send_raw(std::string(1000, 'z'))) return false;
    client.shutdown_write();
    return client.wait_eof();
}

bool stop_with_clients(ServerUnderTest& server) {
    const std::size_t before = server.opened();
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<RawClient>(server.port(), tls_of(server)));
        if (!clients.back()->upgrade()) return false;
    }
    if (!server.wait_opened(before + 3)) return false;
    server.server().stop();
    bool all_told = true;
    for (auto& client : clients) {
        // Each hears 1001 Going Away, answers it, and sees the server's FIN.
        if (client->read_message()) return false;
        const auto close = client->last_close();
        all_told = all_told && close && close->payload.size() >= 2 &&
                   ((static_cast<unsigned char>(close->payload[0]) << 8) | static_cast<unsigned char>(close->payload[1])) == 1001;
        client->send_close(1001);
        all_told = all_told && client->wait_eof();
    }
    return all_told && server.stop_and_join();
}

}  // namespace

bool serves_a_new_client(ServerUnderTest& server) {
    RawClient client(server.port(), tls_of(server));
    return client.upgrade() && client.send_frame(0x1, "still there?") && client.read_message() == "still there?" &&
           close_cleanly(client);
}

const std::vector<Scenario>& all_scenarios() {
    static const std::vector<Scenario> scenarios = {
        {"plain HTTP answer", plain_http},
        {"async HTTP answer", async_http, false, true},
        {"upgrade", upgrade_only},
        {"TLS handshake and echo", echo_small, true},
        {"echo of small messages", echo_small},
        {"echo of 1 MiB messages", echo_large},
        {"fragmented message with a ping inside", fragmented_with_ping},
        {"send from another thread", send_from_another_thread},
        {"peer close handshake", peer_close},
        {"server close handshake", server_close},
        {"lingering", lingering},
        {"stop() with clients connected", stop_with_clients, false, false, true},
    };
    return scenarios;
}

}  // namespace faults
