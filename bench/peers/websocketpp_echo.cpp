// Peer echo server for the benchmarks: WebSocket++ 0.8.2 (Debian libwebsocketpp-dev) on
// Boost.Asio, the asio_no_tls config. Built with -std=c++17: WebSocket++ 0.8.2's headers use
// template-ids as constructor names, which C++20 forbids (fixed upstream only after 0.8.2).
//
// One thread runs the io_service; logging is switched off (access and error channels
// cleared); every message is echoed with its opcode. No permessage-deflate (not in this
// config). TCP_NODELAY on every socket, as the other servers do (websocketpp_peer.hpp).
//
// usage: bench_websocketpp_echo [--host 127.0.0.1] [--port] PORT   (PORT 0 picks a free port)
// Prints "listening on 127.0.0.1:PORT" once accepting; exits cleanly on SIGTERM/SIGINT.
#include "bench/peers/websocketpp_peer.hpp"

int main(int argc, char** argv) {
    const bench_peer::Args args = bench_peer::parse_args(argc, argv);
    try {
        bench_peer::WsppServer server;
        bench_peer::configure(server);
        server.set_message_handler([&server](websocketpp::connection_hdl hdl, bench_peer::WsppServer::message_ptr msg) {
            websocketpp::lib::error_code ec;
            server.send(hdl, msg->get_payload(), msg->get_opcode(), ec);  // ec: peer gone, nothing to do
        });
        bench_peer::listen_and_run(server, args);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "websocketpp_echo: %s\n", e.what());
        return 1;
    }
    return 0;
}
