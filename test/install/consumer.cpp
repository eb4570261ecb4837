// A program built against an installed websock (test/install/run.sh builds it with
// pkg-config, with CMake's find_package, and statically): a server on 127.0.0.1 and a free
// port, on its own thread; a client that sends one message and must get it back; then both
// stop. Exit status 0 only if all of that happened and the library's version is the headers'.
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>

#include <websock/websock.hpp>

int main() {
    if (websock::version() != WEBSOCK_VERSION_STRING) {
        std::fprintf(stderr, "consumer: headers are %s, library is %.*s\n", WEBSOCK_VERSION_STRING,
                     static_cast<int>(websock::version().size()), websock::version().data());
        return 1;
    }

    websock::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    websock::WebSocketServer server{options};
    server.on_data_receive([](websock::Client& client, std::string_view data, websock::MessageType type) {
        client.send(data, type);
    });
    server.on_error([](websock::Client*, const websock::Error& error) {
        std::fprintf(stderr, "consumer: server error: %s\n", error.message.c_str());
    });
    if (!server.listen()) return 1;
    std::thread serving([&server] { server.serve_forever(); });

    int status = 1;
    {
        websock::WebSocketClient client;
        const std::string url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/";
        if (!client.connect(url)) {
            std::fprintf(stderr, "consumer: connect %s: %s\n", url.c_str(), client.last_error().message.c_str());
        } else if (client.send("hello from an installed websock") != websock::SendResult::Queued) {
            std::fprintf(stderr, "consumer: send was not queued\n");
        } else if (auto reply = client.receive(std::chrono::seconds(10)); !reply) {
            std::fprintf(stderr, "consumer: no echo within 10 s\n");
        } else if (reply->data != "hello from an installed websock" || reply->type != websock::MessageType::Text) {
            std::fprintf(stderr, "consumer: wrong echo: %s\n", reply->data.c_str());
        } else {
            client.close();
            if (client.wait_closed(std::chrono::seconds(10))) status = 0;
            else std::fprintf(stderr, "consumer: close handshake did not finish within 10 s\n");
        }
    }
    server.stop();
    serving.join();
    if (status == 0) std::printf("consumer: echo through websock %s ok\n", WEBSOCK_VERSION_STRING);
    return status;
}
