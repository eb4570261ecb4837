// An engine's own start-up calls failing (ServerCore::startup_fault): epoll_create1, the
// inbox eventfd and watching the wakers (epoll_ctl) of each event loop, starting a loop's
// thread; a client's thread and eventfd on thread per client. Loop 0 failing ends serve_forever() with false and says why; another
// loop failing is reported and left out, and the loops that run serve every client (none
// is handed to the missing loop); a client that cannot get its thread or eventfd is told 503
// and the next one is served. Descriptors go back to where they were.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "test/faults/scenarios.hpp"

namespace faults {
namespace {

using Call = websock::detail::ServerCore::StartupCall;

std::string call_name(Call call) {
    switch (call) {
        case Call::EpollCreate: return "epoll_create1";
        case Call::LoopWaker: return "eventfd";
        case Call::LoopWatch: return "epoll_ctl";
        case Call::LoopThread: return "thread";
        case Call::ClientThread: return "client thread";
        case Call::ClientWaker: return "client eventfd";
    }
    return "?";
}

}  // namespace

TEST_CASE("faults: an event loop that cannot start, on three loops") {
    struct Case {
        Call call;
        std::size_t loop;
        int error;
    };
    std::vector<Case> cases;
    for (const std::size_t loop : {0, 1, 2}) {
        cases.push_back({Call::EpollCreate, loop, EMFILE});
        cases.push_back({Call::LoopWaker, loop, ENFILE});
        cases.push_back({Call::LoopWatch, loop, ENOSPC});
    }
    for (const std::size_t loop : {1, 2}) cases.push_back({Call::LoopThread, loop, EAGAIN});

    for (const auto& c : cases) {
        const std::string failing = call_name(c.call);
        CAPTURE(failing);
        CAPTURE(c.loop);
        const std::size_t descriptors_before = open_descriptors();
        {
            Setup setup;
            setup.engine = websock::Engine::EventLoop;
            setup.event_loops = 3;
            setup.startup_fault = [c](Call call, std::size_t index) { return call == c.call && index == c.loop ? c.error : 0; };
            ServerUnderTest server(setup, std::make_shared<FaultPlan>());
            const std::string cause = c.call == Call::LoopThread ? "thread" : failing + ": " + std::strerror(c.error);
            if (c.loop == 0) {
                // No loop 0, no server: serve_forever() says so, at once.
                REQUIRE(server.wait_served(std::chrono::milliseconds(3000)));
                CHECK(server.serve_result() == std::optional<bool>(false));
                CHECK_MESSAGE(any_message_has(server.error_messages(), "event loop 0: " + cause), joined(server.error_messages()));
            } else {
                // The loops before it run; connections go only to them: every client is served.
                for (int i = 0; i < 6; ++i) CHECK(serves_a_new_client(server));
                const auto messages = server.error_messages();
                CHECK_MESSAGE(any_message_has(messages, fmt::format("event loop {} cannot start", c.loop)), joined(messages));
                CHECK_MESSAGE(any_message_has(messages, fmt::format("running {}", c.loop)), joined(messages));
                if (c.call != Call::LoopThread)
                    CHECK_MESSAGE(any_message_has(messages, fmt::format("event loop {}: {}", c.loop, cause)), joined(messages));
                REQUIRE(server.stop_and_join());
                CHECK(server.serve_result() == std::optional<bool>(true));
                CHECK(server.bookkeeping_errors().empty());
            }
        }
        CHECK(open_descriptors() == descriptors_before);
    }
}

TEST_CASE("faults: a client's thread or eventfd that cannot be had, on thread per client") {
    for (const auto& failing : {std::pair{Call::ClientThread, EAGAIN}, std::pair{Call::ClientWaker, EMFILE}}) {
        const Call call = failing.first;
        const int error = failing.second;
        const std::string name = call_name(call);
        CAPTURE(name);
        const std::size_t descriptors_before = open_descriptors();
        {
            Setup setup;
            setup.engine = websock::Engine::ThreadPerClient;
            setup.startup_fault = [call, error](Call c, std::size_t index) { return c == call && index == 0 ? error : 0; };
            ServerUnderTest server(setup, std::make_shared<FaultPlan>());
            RawClient first(server.port());
            const auto answer = first.read_http();
            REQUIRE(answer);
            CHECK(answer->status == 503);
            CHECK(first.wait_eof());
            CHECK(serves_a_new_client(server));
            CHECK(serves_a_new_client(server));
            const auto messages = server.error_messages();
            CHECK_MESSAGE(any_message_has(messages, call == Call::ClientThread ? "cannot start a client thread" : "eventfd"),
                          joined(messages));
            REQUIRE(server.stop_and_join());
            CHECK(server.bookkeeping_errors().empty());
        }
        CHECK(open_descriptors() == descriptors_before);
    }
}

}  // namespace faults
