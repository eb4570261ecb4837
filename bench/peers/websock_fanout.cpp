// Fan-out peer for bench/fanout.cpp: websock's own WebSocketServer::send_all, the way an
// application would broadcast. Clients on /pub publish; every message a publisher sends goes
// to every other client through one send_all (the frame is encoded once; the publisher is left
// out). No permessage-deflate (the fanout client does not offer it anyway).
//
// usage: bench_websock_fanout [--host 127.0.0.1] [--port] PORT [--engine threads|event] [--event-loops N]
//                             [--no-direct-sends]   (ServerOptions::direct_sends off, for A/B runs)
// Prints "listening on 127.0.0.1:PORT"; exits cleanly on SIGTERM/SIGINT.
#include "bench/peers/peer_common.hpp"
#include "websock/websock.hpp"

#include <string_view>

int main(int argc, char** argv) {
    websock::ServerOptions options;
    options.deflate.enabled = false;
    options.handle_signals = true;  // SIGINT/SIGTERM: close everyone with 1001 and return
    bool bad_engine = false;
    const bench_peer::Args args = bench_peer::parse_args(argc, argv, "[--engine threads|event] [--event-loops N] [--no-direct-sends]",
                                                         [&](int& i, int n, char** v) {
        const std::string_view a = v[i];
        if (a == "--engine" && i + 1 < n) {
            const std::string_view e = v[++i];
            if (e == "event") options.engine = websock::Engine::EventLoop;
            else if (e == "threads") options.engine = websock::Engine::ThreadPerClient;
            else bad_engine = true;
            return true;
        }
        if (a == "--no-direct-sends") {
            options.direct_sends = false;
            return true;
        }
        if (a == "--event-loops" && i + 1 < n) {
            options.event_loops = std::strtoull(v[++i], nullptr, 10);
            return true;
        }
        return false;
    });
    if (bad_engine) {
        std::fprintf(stderr, "websock_fanout: --engine must be threads or event\n");
        return 1;
    }
    options.host = args.host;
    options.port = static_cast<std::uint16_t>(args.port);
    websock::WebSocketServer server{options};
    server.on_data_receive([&server](websock::Client& client, std::string_view data, websock::MessageType type) {
        if (client.path() == "/pub") server.send_all(data, type, &client);
    });
    if (!server.listen()) return 1;
    bench_peer::announce_listening(args.host, server.port());
    return server.serve_forever() ? 0 : 1;
}
