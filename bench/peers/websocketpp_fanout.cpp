// Fan-out peer for bench/fanout.cpp: WebSocket++ 0.8.2 (asio_no_tls), one io_service thread,
// logging off, TCP_NODELAY. Clients on /pub publish; every message a publisher sends goes to
// every other client, the way WebSocket++'s broadcast_server example does it
// (server.send(hdl, msg) for each, with the received message).
//
// usage: bench_websocketpp_fanout [--host 127.0.0.1] [--port] PORT   (PORT 0 picks a free port)
// Prints "listening on 127.0.0.1:PORT"; exits cleanly on SIGTERM/SIGINT.
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

using Server = websocketpp::server<websocketpp::config::asio>;

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    int port = -1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
        else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = std::atoi(argv[++i]);
        else port = std::atoi(argv[i]);
    }
    if (port < 0 || port > 65535) {
        std::fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port] PORT\n", argv[0]);
        return 1;
    }
    try {
        Server server;
        std::set<websocketpp::connection_hdl, std::owner_less<websocketpp::connection_hdl>> subscribers;
        server.clear_access_channels(websocketpp::log::alevel::all);
        server.clear_error_channels(websocketpp::log::elevel::all);
        server.init_asio();
        server.set_reuse_addr(true);
        server.set_listen_backlog(4096);
        server.set_socket_init_handler([](websocketpp::connection_hdl, boost::asio::ip::tcp::socket& s) {
            boost::system::error_code ec;
            s.set_option(boost::asio::ip::tcp::no_delay(true), ec);
        });
        server.set_open_handler([&](websocketpp::connection_hdl hdl) {
            if (server.get_con_from_hdl(hdl)->get_resource() != "/pub") subscribers.insert(hdl);
        });
        server.set_close_handler([&](websocketpp::connection_hdl hdl) { subscribers.erase(hdl); });
        server.set_message_handler([&](websocketpp::connection_hdl, Server::message_ptr msg) {
            for (const auto& hdl : subscribers) {
                websocketpp::lib::error_code ec;
                server.send(hdl, msg, ec);  // ec: a subscriber gone, nothing to do
            }
        });

        boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(host), static_cast<unsigned short>(port));
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
        std::printf("listening on %s:%u\n", host.c_str(), local.port());
        std::fflush(stdout);
        server.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "websocketpp_fanout: %s\n", e.what());
        return 1;
    }
    return 0;
}
