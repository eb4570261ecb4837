// websock-echo: returns every text and binary message unchanged. Conformance runs and the
// benchmarks use it.
//
//   websock-echo [--host 127.0.0.1] [--port 9001] [--max-message-bytes 16777216]
//                [--engine threads|event] [--event-loops N] [--busy-poll-us N]
//                [--tls-cert PEM --tls-key PEM] [--no-deflate] [--deflate-compressor shared|own]
//                [--deflate-client-no-context-takeover]
//                [--quiet]
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include <websock/websock.hpp>
#include <websock/malloc_tuning.hpp>

int main(int argc, char** argv) {
    // Freed big message buffers go back to the system (glibc's dynamic mmap threshold off):
    // memory returns to the baseline after big-message clients leave (websock/malloc_tuning.hpp).
    websock::return_freed_memory_promptly();
    websock::ServerOptions options;
    options.port = 9001;
    options.handle_signals = true;  // SIGINT/SIGTERM: close everyone with 1001 and exit 0
    options.deflate.enabled = true;  // permessage-deflate for clients that offer it (--no-deflate: off)
    bool quiet = false;
    // The engine: thread per client (the default) or event loops; WEBSOCK_ENGINE=event (and
    // WEBSOCK_EVENT_LOOPS=N) set the default so a whole test suite can run against either.
    if (const char* engine = std::getenv("WEBSOCK_ENGINE"); engine && std::string_view(engine) == "event")
        options.engine = websock::Engine::EventLoop;
    if (const char* loops = std::getenv("WEBSOCK_EVENT_LOOPS")) options.event_loops = std::strtoull(loops, nullptr, 10);
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--host" && has_value) options.host = argv[++i];
        else if (arg == "--port" && has_value) options.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
        else if (arg == "--max-message-bytes" && has_value) {
            options.max_message_bytes = std::strtoull(argv[++i], nullptr, 10);
            options.max_frame_bytes = options.max_message_bytes;
        } else if (arg == "--tls-cert" && has_value) {
            options.tls.certificate_file = argv[++i];
        } else if (arg == "--tls-key" && has_value) {
            options.tls.private_key_file = argv[++i];
        } else if (arg == "--no-deflate") {
            options.deflate.enabled = false;
        } else if (arg == "--busy-poll-us" && has_value) {
            options.busy_poll = websock::Microseconds(std::strtoull(argv[++i], nullptr, 10));
        } else if (arg == "--deflate-compressor" && has_value) {
            // shared: one zlib compressor per thread for every connection (no context
            // takeover); own: one per connection (see DeflateOptions::shared_compressor)
            const std::string_view which = argv[++i];
            if (which != "shared" && which != "own") {
                fmt::print(stderr, "--deflate-compressor must be shared or own\n");
                return 2;
            }
            options.deflate.shared_compressor = which == "shared";
        } else if (arg == "--deflate-client-no-context-takeover") {
            // ask clients to compress each message afresh (RFC 7692 section 7.1.1.2): with
            // the shared compressor, no zlib state then outlives a message
            options.deflate.client_no_context_takeover = true;
        } else if (arg == "--event-loops" && has_value) {
            options.event_loops = std::strtoull(argv[++i], nullptr, 10);  // 0: one per core
        } else if (arg == "--quiet") {
            quiet = true;
        } else if (arg == "--engine" && has_value) {
            const std::string_view engine = argv[++i];
            if (engine == "event") options.engine = websock::Engine::EventLoop;
            else if (engine == "threads") options.engine = websock::Engine::ThreadPerClient;
            else {
                fmt::print(stderr, "--engine must be threads or event\n");
                return 2;
            }
        } else {
            fmt::print(stderr, "usage: {} [--host HOST] [--port PORT] [--max-message-bytes N] [--engine threads|event]\n       [--event-loops N] [--busy-poll-us N] [--tls-cert PEM --tls-key PEM] [--no-deflate]\n       [--deflate-compressor shared|own] [--deflate-client-no-context-takeover] [--quiet]\n", argv[0]);
            return arg == "--help" ? 0 : 2;
        }
    }

    // Heap pages freed in the middle of the heap (below the mmap threshold) go back too: a
    // thread that trims after memory was freed (websock/malloc_tuning.hpp).
    websock::FreedMemoryTrimmer trimmer;
    websock::WebSocketServer server{options};
    server.on_data_receive([](websock::Client& client, std::string_view data, websock::MessageType type) {
        client.send(data, type);
    });
    server.on_error([quiet](websock::Client* client, const websock::Error& error) {
        if (quiet) return;
        fmt::print(stderr, "websock-echo: client {}: {} error: {}\n", client ? client->id() : 0,
                   websock::to_string(error.kind), error.message);
    });
    if (!server.listen()) return 1;
    fmt::print("listening on {}:{}\n", options.host, server.port());
    std::fflush(stdout);
    return server.serve_forever() ? 0 : 1;
}
