// Peer echo server for the benchmarks: Boost.Beast (Debian libboost-dev 1.74).
//
// One io_context run by one thread, asynchronous accept/read/write, every message echoed
// with its type (text stays text, binary stays binary). No permessage-deflate (Beast's
// default). TCP_NODELAY on every socket, as the other servers do. Command line and the ready
// line: peer_common.hpp.
//
// usage: bench_beast_echo [--host 127.0.0.1] [--port] PORT     (PORT 0 picks a free port)
// Prints "listening on 127.0.0.1:PORT" once accepting; exits cleanly on SIGTERM/SIGINT.
#include "bench/peers/peer_common.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <memory>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    explicit Session(tcp::socket&& socket) : ws_(std::move(socket)) {}

    void start() {
        beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.async_accept(beast::bind_front_handler(&Session::on_accept, shared_from_this()));
    }

private:
    void on_accept(beast::error_code ec) {
        if (ec) return;
        do_read();
    }
    void do_read() { ws_.async_read(buffer_, beast::bind_front_handler(&Session::on_read, shared_from_this())); }
    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return;  // closed (websocket::error::closed) or failed: the session ends
        ws_.text(ws_.got_text());
        ws_.async_write(buffer_.data(), beast::bind_front_handler(&Session::on_write, shared_from_this()));
    }
    void on_write(beast::error_code ec, std::size_t n) {
        if (ec) return;
        buffer_.consume(n);
        do_read();
    }

    websocket::stream<beast::tcp_stream> ws_;
    beast::flat_buffer buffer_;
};

class Listener : public std::enable_shared_from_this<Listener> {
public:
    Listener(net::io_context& ioc, const tcp::endpoint& ep) : ioc_(ioc), acceptor_(ioc) {
        acceptor_.open(ep.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen(net::socket_base::max_listen_connections);
    }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }
    void start() { do_accept(); }
    void stop() {
        beast::error_code ec;
        acceptor_.close(ec);
    }

private:
    void do_accept() { acceptor_.async_accept(ioc_, beast::bind_front_handler(&Listener::on_accept, shared_from_this())); }
    void on_accept(beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted) return;
        if (!ec) std::make_shared<Session>(std::move(socket))->start();
        do_accept();
    }

    net::io_context& ioc_;
    tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
    const bench_peer::Args args = bench_peer::parse_args(argc, argv);
    try {
        net::io_context ioc{1};
        auto listener = std::make_shared<Listener>(ioc, tcp::endpoint(net::ip::make_address(args.host), static_cast<unsigned short>(args.port)));
        listener->start();
        net::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](beast::error_code, int) {
            listener->stop();
            ioc.stop();
        });
        bench_peer::announce_listening(args.host, listener->port());
        ioc.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "beast_echo: %s\n", e.what());
        return 1;
    }
    return 0;
}
