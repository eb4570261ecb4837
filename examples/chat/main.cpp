// websock-chat: a chat room. Serves its page over HTTP and the chat over WebSocket on the
// same port.
//
//   websock-chat [--host 127.0.0.1] [--port 8467] [--web-root DIR] [--tls-cert PEM --tls-key PEM]
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <sstream>
#include <string_view>

#include <fmt/format.h>

#include <websock/websock.hpp>
#include <websock/malloc_tuning.hpp>

#include "chat_room.hpp"

#ifndef WEBSOCK_CHAT_WEB_ROOT
#define WEBSOCK_CHAT_WEB_ROOT "examples/chat/public"
#endif

namespace {

struct StaticFile {
    std::string content_type;
    std::string body;
};

/// The page's files, read once at start: only these names are served, so no request path
/// ever reaches the file system.
std::map<std::string, StaticFile> load_page(const std::filesystem::path& root) {
    const std::pair<const char*, const char*> files[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"chat.css", "text/css; charset=utf-8"},
        {"chat.js", "text/javascript; charset=utf-8"},
        {"favicon.svg", "image/svg+xml"},
    };
    std::map<std::string, StaticFile> page;
    for (const auto& [name, type] : files) {
        std::ifstream in(root / name, std::ios::binary);
        if (!in) continue;
        std::ostringstream body;
        body << in.rdbuf();
        page["/" + std::string(name)] = {type, body.str()};
    }
    if (page.count("/index.html")) page["/"] = page["/index.html"];
    return page;
}

}  // namespace

int main(int argc, char** argv) {
    // Freed big message buffers go back to the system (glibc's dynamic mmap threshold off):
    // memory returns to the baseline after big-message clients leave (websock/malloc_tuning.hpp).
    websock::return_freed_memory_promptly();
    websock::ServerOptions options;
    options.port = 8467;
    options.handle_signals = true;             // SIGTERM (docker stop): close everyone with 1001
    options.max_message_bytes = 16 * 1024;     // chat lines are small; refuse floods early (1009)
    options.max_frame_bytes = 16 * 1024;
    // A stuck browser tab is cut, not buffered forever. Every member gets a copy of every line,
    // so this times the room's size is what members that never read can make the server hold:
    // 300 of them and one talker took 1.7 GB at 4 MiB each. 1 MiB is above the largest welcome
    // (50 lines of history at up to 12 KB of JSON each, and the user list).
    options.max_outbound_queue_bytes = 1u << 20;
    // The room holds 1,000 people (chat::RoomLimits::max_members); room for as many again on
    // their way in or out, not the library's 10,000, each of which may queue up to the bound above.
    options.max_clients = 2 * chat::RoomLimits{}.max_members;
    options.idle_ping_interval = std::chrono::seconds(20);
    std::filesystem::path web_root = WEBSOCK_CHAT_WEB_ROOT;
    if (const char* env = std::getenv("WEBSOCK_CHAT_WEB_ROOT")) web_root = env;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--host" && has_value) options.host = argv[++i];
        else if (arg == "--port" && has_value) options.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
        else if (arg == "--web-root" && has_value) web_root = argv[++i];
        else if (arg == "--tls-cert" && has_value) options.tls.certificate_file = argv[++i];  // serve https:// and wss://
        else if (arg == "--tls-key" && has_value) options.tls.private_key_file = argv[++i];
        else {
            fmt::print(stderr, "usage: {} [--host HOST] [--port PORT] [--web-root DIR] [--tls-cert PEM --tls-key PEM]\n", argv[0]);
            return arg == "--help" ? 0 : 2;
        }
    }
    const auto page = load_page(web_root);
    if (!page.count("/")) {
        fmt::print(stderr, "websock-chat: no index.html in {}\n", web_root.string());
        return 1;
    }

    // Heap pages freed in the middle of the heap (below the mmap threshold) go back too: a
    // thread that trims after memory was freed (websock/malloc_tuning.hpp).
    websock::FreedMemoryTrimmer trimmer;
    websock::WebSocketServer server{options};
    // The room knows members by id; this map turns an id back into a connection.
    std::mutex connections_mutex;
    std::unordered_map<std::uint64_t, std::shared_ptr<websock::Client>> connections;
    auto connection_of = [&](std::uint64_t member) {
        std::lock_guard lock(connections_mutex);
        const auto it = connections.find(member);
        return it == connections.end() ? nullptr : it->second;
    };
    chat::ChatRoom room(
        [&](std::uint64_t member, const std::string& event) {
            if (auto client = connection_of(member)) client->send(event);
        },
        [&](std::uint64_t member) {
            if (auto client = connection_of(member)) client->close(websock::CloseCode::Normal, "bye");
        });

    server.on_http_request([&page](const websock::HttpRequest& request) {
        if (request.path == "/healthz") return websock::HttpResponse::text(200, "ok\n");
        if (request.method != "GET" && request.method != "HEAD")
            return websock::HttpResponse::text(405, "method not allowed\n").header("Allow", "GET, HEAD");
        const auto file = page.find(request.path);
        if (file == page.end()) return websock::HttpResponse::text(404, "not found\n");
        auto response = websock::HttpResponse::text(200, file->second.body, file->second.content_type);
        response.header("Cache-Control", "no-cache");
        response.header("X-Content-Type-Options", "nosniff");
        // The page loads only its own files and talks only to its own host.
        response.header("Content-Security-Policy",
                        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'");
        return response;
    });
    server.on_connection_open([&](websock::Client& client) {
        if (client.path() != "/chat") {
            client.close(websock::CloseCode::PolicyViolation, "the chat lives at /chat");
            return;
        }
        {
            std::lock_guard lock(connections_mutex);
            connections.emplace(client.id(), client.shared_from_this());
        }
        room.connect(client.id());
    });
    server.on_data_receive([&room](websock::Client& client, std::string_view data, websock::MessageType type) {
        room.receive(client.id(), data, type == websock::MessageType::Text);
    });
    server.on_connection_close([&](websock::Client& client, websock::CloseCode, std::string_view) {
        room.disconnect(client.id());
        std::lock_guard lock(connections_mutex);
        connections.erase(client.id());
    });
    server.on_error([](websock::Client* client, const websock::Error& error) {
        fmt::print(stderr, "websock-chat: {}{} error: {}\n", client ? fmt::format("client {}: ", client->id()) : "",
                   websock::to_string(error.kind), error.message);
    });
    server.on_server_destruct([] { fmt::print(stderr, "websock-chat: stopped\n"); });

    if (!server.listen()) return 1;
    fmt::print("listening on {}:{}\n", options.host, server.port());
    fmt::print("chat room at {}://{}:{}/\n", options.tls.enabled() ? "https" : "http", options.host, server.port());
    std::fflush(stdout);
    return server.serve_forever() ? 0 : 1;
}
