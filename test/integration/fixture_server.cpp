// fixture_server: a test server built on the public API only, for the integration tests of
// behaviours the echo example does not have (server.test.mjs drives it).
//
//   fixture_server [--host 127.0.0.1] [--port 0] [--max-clients N] [--max-queue-bytes N] [--max-total-outbound-bytes N]
//                  [--max-total-incoming-message-bytes N]
//                  [--queue-policy close|drop] [--idle-ping-ms N] [--pong-timeout-ms N]
//                  [--handshake-timeout-ms N] [--shutdown-timeout-ms N] [--close-timeout-ms N]
//                  [--event-loops N]
//
// WEBSOCK_ENGINE=event picks the event-loop engine, WEBSOCK_EVENT_LOOPS=N its loop count.
//
// Prints `listening on HOST:PORT` once listening. SIGINT/SIGTERM stop it. When the server
// has finished (on_server_destruct) it prints `destructed opens=<n> closes=<n> ...`.
//
// Text messages are commands; anything else (and every binary message) is echoed:
//   broadcast:<text>        send_all(<text>) to everyone but the sender; the sender then
//                           gets "broadcast-sent:<number accepted>"
//   threads:<n>:<m>[:<pad>] n std::threads (started together) each send m text messages
//                           "t<i>:<j>:<pad bytes>" to this client; when all are done the
//                           client gets "threads-done:<queued>:<dropped>:<closed>"
//   close:<code>:<reason>   client.close(code, reason) from inside the callback
//   throw                   the callback throws (on_error must see a Callback error)
//   stats                   "errors:<callback errors so far>"
//   stop                    server.stop() from inside the callback
//   count                   "count:<client_count()>"
//   backlog                 "backlog:<outbound_backlog_bytes()>"
//   incoming                "incoming:<incoming_message_bytes()>"
//   id                      "id:<client id>"
//   thread                  "thread:<n>": which thread runs this client's callbacks (a
//                           number per thread, from 1 in order of first use)
//   ping:<payload>          client.ping(payload) (server-initiated ping)
#include <atomic>
#include <chrono>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <websock/websock.hpp>

namespace {

std::uint64_t parse_number(std::string_view text, std::uint64_t fallback = 0) {
    std::uint64_t value = fallback;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    return result.ec == std::errc{} ? value : fallback;
}

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

/// The padding of message j of thread i: recognisable, so corruption or interleaving shows.
std::string padding(std::uint64_t thread, std::uint64_t index, std::uint64_t size) {
    return std::string(size, static_cast<char>('a' + (thread * 7 + index) % 26));
}

/// A small number for the calling thread, from 1 in order of first use.
std::uint64_t thread_number() {
    static std::atomic<std::uint64_t> next{1};
    thread_local const std::uint64_t mine = next.fetch_add(1);
    return mine;
}

struct Stats {
    std::atomic<std::uint64_t> opens{0};
    std::atomic<std::uint64_t> closes{0};
    std::atomic<std::uint64_t> callback_errors{0};
    std::atomic<std::uint64_t> errors{0};
};

}  // namespace

int main(int argc, char** argv) {
    websock::ServerOptions options;
    options.port = 0;
    options.handle_signals = true;
    // WEBSOCK_ENGINE=event runs the same tests against the event-loop engine.
    if (const char* engine = std::getenv("WEBSOCK_ENGINE"); engine && std::string_view(engine) == "event")
        options.engine = websock::Engine::EventLoop;
    if (const char* loops = std::getenv("WEBSOCK_EVENT_LOOPS")) options.event_loops = parse_number(loops, 1);
    bool use_async_http = false;  // --async-http yes: plain HTTP answered through on_http_request_async
    bool use_hook = false;  // --hook yes: a user hook that refuses /deny* with 451 and tags the 101
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "fixture_server: %s needs a value\n", argv[i]);
            return 2;
        }
        const std::string_view value = argv[++i];
        const auto number = parse_number(value);
        if (arg == "--host") options.host = std::string(value);
        else if (arg == "--port") options.port = static_cast<std::uint16_t>(number);
        else if (arg == "--max-clients") options.max_clients = number;
        else if (arg == "--max-queue-bytes") options.max_outbound_queue_bytes = number;
        else if (arg == "--max-total-outbound-bytes") options.max_total_outbound_bytes = number;
        else if (arg == "--max-total-incoming-message-bytes") options.max_total_incoming_message_bytes = number;
        else if (arg == "--queue-policy")
            options.queue_full_policy = value == "drop" ? websock::QueueFullPolicy::Drop : websock::QueueFullPolicy::Close;
        else if (arg == "--idle-ping-ms") options.idle_ping_interval = websock::Milliseconds(number);
        else if (arg == "--pong-timeout-ms") options.pong_timeout = websock::Milliseconds(number);
        else if (arg == "--handshake-timeout-ms") options.handshake_timeout = websock::Milliseconds(number);
        else if (arg == "--shutdown-timeout-ms") options.shutdown_timeout = websock::Milliseconds(number);
        else if (arg == "--close-timeout-ms") options.close_timeout = websock::Milliseconds(number);
        else if (arg == "--event-loops") options.event_loops = number;
        // handshake policy (each may repeat where it is a list)
        else if (arg == "--allowed-path") options.policy.allowed_paths.emplace_back(value);
        else if (arg == "--allowed-origin") options.policy.allowed_origins.emplace_back(value);
        else if (arg == "--require-origin") options.policy.require_origin = value == "yes";
        else if (arg == "--subprotocol") options.policy.subprotocols.emplace_back(value);
        else if (arg == "--require-subprotocol") options.policy.require_subprotocol = value == "yes";
        else if (arg == "--basic-auth") {
            const std::size_t colon = value.find(':');
            options.policy.basic_auth_user = std::string(value.substr(0, colon));
            options.policy.basic_auth_password = colon == std::string_view::npos ? "" : std::string(value.substr(colon + 1));
        } else if (arg == "--hook") use_hook = value == "yes";
        else if (arg == "--async-http") use_async_http = value == "yes";
        else if (arg == "--http-response-timeout-ms") options.http_response_timeout = websock::Milliseconds(number);
        else if (arg == "--tls-cert") options.tls.certificate_file = std::string(value);
        else if (arg == "--tls-key") options.tls.private_key_file = std::string(value);
        else {
            std::fprintf(stderr, "fixture_server: unknown option %s\n", argv[i - 1]);
            return 2;
        }
    }

    Stats stats;
    std::mutex workers_mutex;
    std::vector<std::thread> workers;  // joined after serve_forever() returns

    websock::WebSocketServer server{options};

    server.on_connection_open([&](websock::Client&) { stats.opens.fetch_add(1); });
    if (use_hook) {
        server.on_handshake([](const websock::HandshakeRequest& request, websock::HandshakeDecision decision) {
            if (starts_with(request.request.path, "/deny")) return websock::HandshakeDecision::rejected(451, "denied by the hook");
            if (starts_with(request.request.path, "/throw")) throw std::runtime_error("hook failure");
            if (starts_with(request.request.path, "/badproto")) decision.subprotocol = "never-offered";
            decision.headers.emplace_back("X-Hook", "yes");
            return decision;
        });
    }

    // --async-http yes: /now answers inside the handler (/big?bytes=N too, with N bytes), /later?ms=N from another thread after
    // N ms, /never not at all (http_response_timeout answers), /throw throws, /watch keeps its
    // responder and /watched tells whether the kept one is answered (its client gone).
    std::shared_ptr<websock::HttpResponder> watched;  // guarded by workers_mutex
    if (use_async_http) {
        server.on_http_request_async([&](const websock::HttpRequest& request, std::shared_ptr<websock::HttpResponder> responder) {
            if (request.path == "/now") {
                responder->respond(websock::HttpResponse::text(200, "now:" + request.peer_address));
            } else if (request.path == "/big") {
                const auto bytes = std::min<std::size_t>(parse_number(request.query_param("bytes").value_or("65536")), 1u << 20);
                responder->respond(websock::HttpResponse::text(200, std::string(bytes, 'b')));
            } else if (request.path == "/later") {
                const auto delay = std::chrono::milliseconds(parse_number(request.query_param("ms").value_or("10")));
                std::lock_guard lock(workers_mutex);
                workers.emplace_back([responder, delay, method = request.method] {
                    std::this_thread::sleep_for(delay);  // stands for a slow service, not a test wait
                    const bool sent = responder->respond(websock::HttpResponse::text(200, "later:" + method));
                    if (sent && !responder->answered()) std::fprintf(stderr, "fixture_server: answered() false after respond\n");
                });
            } else if (request.path == "/never") {
                // no answer: the server's http_response_timeout gives 503
            } else if (request.path == "/throw") {
                throw std::runtime_error("async handler failure");
            } else if (request.path == "/watch") {
                std::lock_guard lock(workers_mutex);
                watched = responder;
            } else if (request.path == "/watched") {
                std::lock_guard lock(workers_mutex);
                const bool gone = watched && watched->answered();
                const bool late = gone && !watched->respond(websock::HttpResponse::text(200, "too late"));
                responder->respond(websock::HttpResponse::text(200, fmt::format("answered:{} refused:{}", gone, late)));
            } else {
                responder->respond(websock::HttpResponse::text(404, "no such route\n"));
            }
        });
    }

    server.on_connection_close([&](websock::Client&, websock::CloseCode, std::string_view) { stats.closes.fetch_add(1); });

    server.on_error([&](websock::Client* client, const websock::Error& error) {
        stats.errors.fetch_add(1);
        if (error.kind == websock::ErrorKind::Callback) stats.callback_errors.fetch_add(1);
        std::fprintf(stderr, "fixture_server: client %llu: %.*s error: %s\n",
                     static_cast<unsigned long long>(client ? client->id() : 0),
                     static_cast<int>(websock::to_string(error.kind).size()), websock::to_string(error.kind).data(),
                     error.message.c_str());
    });

    server.on_data_receive([&](websock::Client& client, std::string_view data, websock::MessageType type) {
        if (type == websock::MessageType::Binary) {
            client.send_binary(data);
            return;
        }
        if (starts_with(data, "broadcast:")) {
            const std::size_t accepted = server.send_all(data.substr(10), websock::MessageType::Text, &client);
            client.send("broadcast-sent:" + std::to_string(accepted));
        } else if (starts_with(data, "threads:")) {
            // threads:<n>:<m>[:<pad>]
            std::string_view rest = data.substr(8);
            const auto colon = rest.find(':');
            const std::uint64_t n = parse_number(rest.substr(0, colon));
            rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
            const auto colon2 = rest.find(':');
            const std::uint64_t m = parse_number(rest.substr(0, colon2));
            const std::uint64_t pad = colon2 == std::string_view::npos ? 0 : parse_number(rest.substr(colon2 + 1));
            auto self = client.shared_from_this();
            // A coordinator starts the n senders together and reports when all are done, so
            // this callback returns at once and the client's thread keeps writing meanwhile.
            std::lock_guard lock(workers_mutex);
            workers.emplace_back([self, n, m, pad] {
                std::atomic<std::uint64_t> queued{0}, dropped{0}, closed{0};
                std::latch start(static_cast<std::ptrdiff_t>(n) + 1);
                std::vector<std::thread> senders;
                senders.reserve(n);
                for (std::uint64_t t = 0; t < n; ++t) {
                    senders.emplace_back([&, t] {
                        start.arrive_and_wait();
                        for (std::uint64_t j = 0; j < m; ++j) {
                            const std::string message = "t" + std::to_string(t) + ":" + std::to_string(j) + ":" + padding(t, j, pad);
                            switch (self->send(message)) {
                            case websock::SendResult::Queued: queued.fetch_add(1); break;
                            case websock::SendResult::Dropped: dropped.fetch_add(1); break;
                            case websock::SendResult::Closed: closed.fetch_add(1); return;
                            }
                        }
                    });
                }
                start.arrive_and_wait();
                for (auto& s : senders) s.join();
                self->send("threads-done:" + std::to_string(queued.load()) + ":" + std::to_string(dropped.load()) + ":" +
                           std::to_string(closed.load()));
            });
        } else if (starts_with(data, "close:")) {
            std::string_view rest = data.substr(6);
            const auto colon = rest.find(':');
            const auto code = static_cast<std::uint16_t>(parse_number(rest.substr(0, colon), 1000));
            const std::string_view reason = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
            client.close(static_cast<websock::CloseCode>(code), reason);
        } else if (data == "throw") {
            throw std::runtime_error("fixture_server: thrown on request");
        } else if (data == "stats") {
            client.send("errors:" + std::to_string(stats.callback_errors.load()));
        } else if (data == "stop") {
            server.stop();
        } else if (data == "subprotocol") {
            client.send("subprotocol:" + client.subprotocol());
        } else if (data == "backlog") {
            client.send("backlog:" + std::to_string(server.outbound_backlog_bytes()));
        } else if (data == "incoming") {
            client.send("incoming:" + std::to_string(server.incoming_message_bytes()));
        } else if (data == "count") {
            client.send("count:" + std::to_string(server.client_count()));
        } else if (data == "id") {
            client.send("id:" + std::to_string(client.id()));
        } else if (data == "thread") {
            client.send("thread:" + std::to_string(thread_number()));
        } else if (starts_with(data, "ping:")) {
            client.ping(data.substr(5));
        } else {
            client.send(data);
        }
    });

    server.on_server_destruct([&] {
        std::printf("destructed opens=%llu closes=%llu errors=%llu callback_errors=%llu\n",
                    static_cast<unsigned long long>(stats.opens.load()),
                    static_cast<unsigned long long>(stats.closes.load()),
                    static_cast<unsigned long long>(stats.errors.load()),
                    static_cast<unsigned long long>(stats.callback_errors.load()));
        std::fflush(stdout);
    });

    if (!server.listen()) return 1;
    std::printf("listening on %s:%u\n", options.host.c_str(), static_cast<unsigned>(server.port()));
    std::fflush(stdout);
    const bool ok = server.serve_forever();

    std::vector<std::thread> to_join;
    {
        std::lock_guard lock(workers_mutex);
        to_join.swap(workers);
    }
    for (auto& w : to_join) w.join();
    return ok ? 0 : 1;
}
