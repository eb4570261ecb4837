// websock-client: a line-oriented WebSocket client. Every line read from stdin goes out as a
// text message; every message received is printed on stdout (a binary one as a note with its
// size). At the end of the input it closes with 1000, waits for the close handshake and
// exits; it also exits when the server closes first.
//
//   websock-client [--protocol NAME]... [--origin ORIGIN] [--header 'Name: value']... ws://HOST:PORT/PATH
//
// Exit status: 0 after a close handshake, 1 when the connection could not be opened, 2 for
// bad arguments, 3 when the connection was lost without a close handshake.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <websock/client.hpp>

namespace {

int usage(const char* program, int status) {
    fmt::print(status == 0 ? stdout : stderr,
               "usage: {} [--protocol NAME]... [--origin ORIGIN] [--header 'Name: value']... ws://HOST:PORT/PATH\n", program);
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    websock::ClientOptions options;
    std::string url;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--protocol" && has_value) {
            options.subprotocols.emplace_back(argv[++i]);
        } else if (arg == "--origin" && has_value) {
            options.origin = argv[++i];
        } else if (arg == "--header" && has_value) {
            const std::string_view header = argv[++i];
            const std::size_t colon = header.find(':');
            if (colon == std::string_view::npos) return usage(argv[0], 2);
            std::string_view value = header.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            options.extra_headers.emplace_back(std::string(header.substr(0, colon)), std::string(value));
        } else if (arg == "--help") {
            return usage(argv[0], 0);
        } else if (url.empty() && !arg.starts_with("--")) {
            url = arg;
        } else {
            return usage(argv[0], 2);
        }
    }
    if (url.empty()) return usage(argv[0], 2);

    // on_close writes to this pipe, so the main loop wakes when the server closes first.
    int closed_pipe[2];
    if (::pipe(closed_pipe) != 0) {
        std::perror("pipe");
        return 1;
    }

    websock::WebSocketClient client{options};
    client.on_message([](std::string_view data, websock::MessageType type) {
        if (type == websock::MessageType::Text) fmt::print("{}\n", data);
        else fmt::print("[binary message, {} bytes]\n", data.size());
        std::fflush(stdout);
    });
    client.on_error([](const websock::Error& error) {
        fmt::print(stderr, "websock-client: {} error: {}\n", websock::to_string(error.kind), error.message);
    });
    client.on_close([&](websock::CloseCode code, std::string_view reason) {
        fmt::print(stderr, "websock-client: closed ({}{}{})\n", static_cast<int>(code), reason.empty() ? "" : ": ", reason);
        const char byte = 1;
        [[maybe_unused]] const auto written = ::write(closed_pipe[1], &byte, 1);
    });
    if (!client.connect(url)) return 1;
    if (!client.subprotocol().empty()) fmt::print(stderr, "websock-client: subprotocol {}\n", client.subprotocol());

    std::string pending;  // a line still being read
    char buffer[4096];
    bool input_open = true;
    while (input_open) {
        pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {closed_pipe[0], POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            std::perror("poll");
            break;
        }
        if (fds[1].revents & POLLIN) break;  // the server closed first
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t got = ::read(STDIN_FILENO, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            input_open = false;
            if (!pending.empty()) client.send(pending);
            break;
        }
        pending.append(buffer, static_cast<std::size_t>(got));
        std::size_t start = 0;
        for (std::size_t newline; (newline = pending.find('\n', start)) != std::string::npos; start = newline + 1) {
            std::string_view line(pending.data() + start, newline - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            client.send(line);
        }
        pending.erase(0, start);
    }
    client.close(websock::CloseCode::Normal);
    client.wait_closed();
    ::close(closed_pipe[0]);
    ::close(closed_pipe[1]);
    const auto status = client.close_status();
    return status && status->code != websock::CloseCode::Abnormal ? 0 : 3;
}
