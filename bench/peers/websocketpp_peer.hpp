// bench/peers/websocketpp_peer.hpp — the set-up both WebSocket++ peers share (echo and
// fan-out): asio_no_tls config, logging off, SO_REUSEADDR, a 4096 backlog, TCP_NODELAY on every
// socket, stop on SIGTERM/SIGINT, and the "listening on" line once accepting.
#pragma once

#include "bench/peers/peer_common.hpp"

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <boost/asio/signal_set.hpp>

#include <stdexcept>

namespace bench_peer {

using WsppServer = websocketpp::server<websocketpp::config::asio>;

// Before the handlers are set.
inline void configure(WsppServer& server) {
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio();
    server.set_reuse_addr(true);
    server.set_listen_backlog(4096);
    server.set_socket_init_handler([](websocketpp::connection_hdl, boost::asio::ip::tcp::socket& s) {
        boost::system::error_code ec;
        s.set_option(boost::asio::ip::tcp::no_delay(true), ec);
    });
}

// After the handlers are set: listen, announce, and run one io_service thread until a signal.
inline void listen_and_run(WsppServer& server, const Args& args) {
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(args.host), static_cast<unsigned short>(args.port));
    server.listen(ep);
    server.start_accept();
    boost::system::error_code ec;
    const auto local = server.get_local_endpoint(ec);
    if (ec) throw std::runtime_error("get_local_endpoint: " + ec.message());
    boost::asio::signal_set signals(server.get_io_service(), SIGINT, SIGTERM);
    signals.async_wait([&server](const boost::system::error_code&, int) {
        websocketpp::lib::error_code ignored;
        server.stop_listening(ignored);
        server.stop();
    });
    announce_listening(args.host, local.port());
    server.run();
}

}  // namespace bench_peer
