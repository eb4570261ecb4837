// An engine's calls while serving failing (ServerCore::serving_fault): the event loop's
// epoll_ctl on a new connection (refused with 503), on a connection's events (that client is
// cut and told why, once), on the listener (accepting resumes once the kernel lets it; a
// pause is acknowledged only once it holds), and the fcntl that duplicates the listener for
// a restart (-1 with errno; the server serves on). Every other client is served, and
// descriptors go back to where they were.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "test/faults/scenarios.hpp"

namespace faults {
namespace {

using Call = websock::detail::ServerCore::ServingCall;
using Clock = std::chrono::steady_clock;

/// Fails the calls of one kind whose index is below `count` (the first `count` of them).
std::function<int(Call, std::size_t)> fail_first(Call failing, std::size_t count, int error) {
    return [=](Call call, std::size_t index) { return call == failing && index < count ? error : 0; };
}

/// Poll `condition` until it holds or `limit` passes.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = std::chrono::milliseconds(3000)) {
    const auto deadline = Clock::now() + limit;
    while (!condition()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

Setup event_loop_setup(std::size_t loops, std::function<int(Call, std::size_t)> fault) {
    Setup setup;
    setup.engine = websock::Engine::EventLoop;
    setup.event_loops = loops;
    setup.serving_fault = std::move(fault);
    return setup;
}

}  // namespace

TEST_CASE("faults: a new connection the event loop cannot watch is refused with 503, on one and two loops") {
    for (const std::size_t loops : {1, 2}) {
        CAPTURE(loops);
        const std::size_t descriptors_before = open_descriptors();
        {
            ServerUnderTest server(event_loop_setup(loops, fail_first(Call::WatchClient, 1, ENOSPC)), std::make_shared<FaultPlan>());
            RawClient first(server.port());
            const auto answer = first.read_http();
            REQUIRE(answer);
            CHECK(answer->status == 503);
            CHECK(first.wait_eof());
            for (int i = 0; i < 4; ++i) CHECK(serves_a_new_client(server));  // both loops, when two
            const auto messages = server.error_messages();
            CHECK_MESSAGE(any_message_has(messages, "cannot watch a new connection: epoll_ctl: " + std::string(std::strerror(ENOSPC))),
                          joined(messages));
            REQUIRE(server.stop_and_join());
            CHECK(server.bookkeeping_errors().empty());
        }
        CHECK(open_descriptors() == descriptors_before);
    }
}

TEST_CASE("faults: a client whose events the event loop cannot change is cut, told once, and the rest are served") {
    const std::size_t descriptors_before = open_descriptors();
    {
        ServerUnderTest server(event_loop_setup(1, fail_first(Call::ChangeInterest, 1, ENOMEM)), std::make_shared<FaultPlan>());
        RawClient stalled(server.port());
        REQUIRE(stalled.upgrade());
        REQUIRE(server.wait_opened(1));
        // 8 MiB to a client that reads nothing: the write blocks, the loop asks for EPOLLOUT,
        // and that is the call that fails.
        auto client = server.latest_client();
        REQUIRE(client);
        CHECK(client->send(std::string(8u << 20, 'x'), websock::MessageType::Binary) == websock::SendResult::Queued);
        client.reset();
        CHECK(server.wait_all_closed());
        const auto messages = server.error_messages();
        CHECK_MESSAGE(any_message_has(messages, "the loop cannot watch it, so it is cut"), joined(messages));
        CHECK(serves_a_new_client(server));
        CHECK(serves_a_new_client(server));
        REQUIRE(server.stop_and_join());
        CHECK(server.bookkeeping_errors().empty());
        CHECK(server.opened() == 3);
    }
    CHECK(open_descriptors() == descriptors_before);
}

TEST_CASE("faults: a listener the event loop cannot watch is watched again after a pause, not forgotten") {
    const std::size_t descriptors_before = open_descriptors();
    {
        // The first three tries fail: at start, and twice more 100 ms apart.
        ServerUnderTest server(event_loop_setup(1, fail_first(Call::WatchListener, 3, ENOMEM)), std::make_shared<FaultPlan>());
        RawClient waiting(server.port(), nullptr, std::chrono::milliseconds(5000));  // in the backlog meanwhile
        CHECK(waiting.upgrade());
        CHECK(serves_a_new_client(server));
        const auto messages = server.error_messages();
        CHECK_MESSAGE(any_message_has(messages, "cannot watch the listening socket: epoll_ctl"), joined(messages));
        // Paused by the user and resumed: the listener is watched anew, and that works now.
        server.server().pause_accepting();
        CHECK(eventually([&] { return server.server().accepting_paused(); }));
        server.server().resume_accepting();
        CHECK(serves_a_new_client(server));
        REQUIRE(server.stop_and_join());
        CHECK(server.bookkeeping_errors().empty());
    }
    CHECK(open_descriptors() == descriptors_before);
}

TEST_CASE("faults: a pause is acknowledged only once the listener is out of epoll") {
    SUBCASE("the first try fails: the pause holds after the retry") {
        ServerUnderTest server(event_loop_setup(1, fail_first(Call::UnwatchListener, 1, ENOMEM)), std::make_shared<FaultPlan>());
        CHECK(serves_a_new_client(server));
        server.server().pause_accepting();
        CHECK(eventually([&] { return server.server().accepting_paused(); }));
        const auto messages = server.error_messages();
        CHECK_MESSAGE(any_message_has(messages, "cannot stop watching the listening socket"), joined(messages));
        server.server().resume_accepting();
        CHECK(serves_a_new_client(server));
        REQUIRE(server.stop_and_join());
        CHECK(server.bookkeeping_errors().empty());
    }
    SUBCASE("every try fails: never acknowledged, and clients are still served") {
        ServerUnderTest server(event_loop_setup(1, fail_first(Call::UnwatchListener, ~std::size_t{0}, ENOMEM)),
                               std::make_shared<FaultPlan>());
        CHECK(serves_a_new_client(server));  // serving: a pause asked before serve_forever() holds at once
        server.server().pause_accepting();
        // Bounded: a pause that is never obeyed must not be reported as holding, which is
        // what a restart relies on before it hands the listener on.
        CHECK_FALSE(eventually([&] { return server.server().accepting_paused(); }, std::chrono::milliseconds(400)));
        CHECK(serves_a_new_client(server));
        server.server().resume_accepting();
        CHECK(serves_a_new_client(server));
        REQUIRE(server.stop_and_join());
        CHECK(server.bookkeeping_errors().empty());
    }
}

TEST_CASE("faults: duplicating the listener for a restart fails with errno, and the server serves on, on both engines") {
    for (const auto engine : {websock::Engine::ThreadPerClient, websock::Engine::EventLoop}) {
        CAPTURE(static_cast<int>(engine));
        const std::size_t descriptors_before = open_descriptors();
        {
            Setup setup;
            setup.engine = engine;
            setup.serving_fault = fail_first(Call::DuplicateListener, 1, EMFILE);
            ServerUnderTest server(setup, std::make_shared<FaultPlan>());
            errno = 0;
            CHECK(server.server().duplicate_listen_socket() == -1);
            CHECK(errno == EMFILE);
            CHECK(serves_a_new_client(server));
            const int copy = server.server().duplicate_listen_socket();  // the next one works
            CHECK(copy >= 3);
            if (copy >= 0) ::close(copy);
            CHECK(serves_a_new_client(server));
            REQUIRE(server.stop_and_join());
            CHECK(server.bookkeeping_errors().empty());
        }
        CHECK(open_descriptors() == descriptors_before);
    }
}

}  // namespace faults
