// Fan-out peer for bench/fanout.cpp: WebSocket++ 0.8.2 (asio_no_tls), one io_service thread,
// logging off, TCP_NODELAY (websocketpp_peer.hpp). Clients on /pub publish; every message a
// publisher sends goes to every other client, the way WebSocket++'s broadcast_server example
// does it (server.send(hdl, msg) for each, with the received message).
//
// usage: bench_websocketpp_fanout [--host 127.0.0.1] [--port] PORT   (PORT 0 picks a free port)
// Prints "listening on 127.0.0.1:PORT"; exits cleanly on SIGTERM/SIGINT.
#include "bench/peers/websocketpp_peer.hpp"

#include <set>

using bench_peer::WsppServer;

int main(int argc, char** argv) {
    const bench_peer::Args args = bench_peer::parse_args(argc, argv);
    try {
        WsppServer server;
        std::set<websocketpp::connection_hdl, std::owner_less<websocketpp::connection_hdl>> subscribers;
        bench_peer::configure(server);
        server.set_open_handler([&](websocketpp::connection_hdl hdl) {
            if (server.get_con_from_hdl(hdl)->get_resource() != "/pub") subscribers.insert(hdl);
        });
        server.set_close_handler([&](websocketpp::connection_hdl hdl) { subscribers.erase(hdl); });
        server.set_message_handler([&](websocketpp::connection_hdl, WsppServer::message_ptr msg) {
            for (const auto& hdl : subscribers) {
                websocketpp::lib::error_code ec;
                server.send(hdl, msg, ec);  // ec: a subscriber gone, nothing to do
            }
        });
        bench_peer::listen_and_run(server, args);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "websocketpp_fanout: %s\n", e.what());
        return 1;
    }
    return 0;
}
