// The handover of a zero-downtime restart (hub/restart_channel.hpp, Hub::export_handover and
// import_handover): a module's bytes, whatever they hold and however large, arrive intact in
// the module of the same name on the other side of the channel; a broken or silent channel
// is told apart; the pidfile is written atomically and removed only by its owner.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hub/hub.hpp"
#include "hub/restart_channel.hpp"

using namespace std::chrono_literals;
namespace restart = hub::restart;

namespace {

using Clock = std::chrono::steady_clock;

/// A module that only hands state over: what it exports, and what it was given.
class FakeModule final : public hub::HubModule {
public:
    FakeModule(std::string name, std::string state) : name_(std::move(name)), state_(std::move(state)) {}
    std::string_view name() const noexcept override { return name_; }
    void start(const hub::ModuleContext&) override {}
    bool handle_http(const websock::HttpRequest&, const std::shared_ptr<websock::HttpResponder>&) override { return false; }
    bool owns_websocket(const websock::HttpRequest&) const override { return false; }
    websock::HandshakeDecision handshake(const websock::HandshakeRequest&, websock::HandshakeDecision decision) override {
        return decision;
    }
    void on_open(websock::Client&) override {}
    void on_message(websock::Client&, std::string_view, websock::MessageType) override {}
    void on_close(websock::Client&, websock::CloseCode, std::string_view) override {}
    void on_bus_message(std::string_view, std::string_view) override {}
    std::string export_handover() override { return state_; }
    void import_handover(std::string_view state) override { imported.emplace_back(state); }

    std::vector<std::string> imported;

private:
    std::string name_;
    std::string state_;
};

struct Channel {
    int ends[2] = {-1, -1};
    Channel() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) == 0); }
    ~Channel() {
        for (int fd : ends)
            if (fd >= 0) ::close(fd);
    }
    void close_end(int i) {
        ::close(ends[i]);
        ends[i] = -1;
    }
};

std::string every_byte_value(std::size_t size) {
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + i / 256) & 0xFF);
    return bytes;
}

}  // namespace

TEST_CASE("module states cross the channel intact, into the module of the same name, large ones included") {
    hub::Hub old_hub{hub::HubOptions{}};
    static constexpr char kSmall[] = "\0\xff\x01 binary, with NULs\0";
    const std::string small(kSmall, sizeof kSmall - 1);  // the NULs included, the terminator not
    const std::string large = every_byte_value(8u << 20);  // far past a socket's buffer
    old_hub.add_module(std::make_unique<FakeModule>("first", small));
    old_hub.add_module(std::make_unique<FakeModule>("nothing", ""));  // nothing to hand over: not sent
    old_hub.add_module(std::make_unique<FakeModule>("second", large));

    hub::Hub new_hub{hub::HubOptions{}};
    auto first = std::make_unique<FakeModule>("first", "");
    auto second = std::make_unique<FakeModule>("second", "");
    auto nothing = std::make_unique<FakeModule>("nothing", "");
    FakeModule* first_seen = first.get();
    FakeModule* second_seen = second.get();
    FakeModule* nothing_seen = nothing.get();
    new_hub.add_module(std::move(second));  // another order: names decide, not positions
    new_hub.add_module(std::move(first));
    new_hub.add_module(std::move(nothing));

    Channel channel;
    const auto states = old_hub.export_handover();
    REQUIRE(states.size() == 2);
    std::string send_error;
    bool sent = true;
    std::thread sender([&] {  // the reader must drain the socket while 8 MiB go in
        const auto deadline = Clock::now() + 30s;
        for (const auto& [module, state] : states)
            sent = sent && restart::send_message(channel.ends[0], restart::MessageKind::Module,
                                                 restart::encode_module_state(module, state), deadline, send_error);
        sent = sent && restart::send_message(channel.ends[0], restart::MessageKind::End, {}, deadline, send_error);
    });
    std::size_t imported = 0;
    for (;;) {
        std::string error;
        const auto message = restart::receive_message(channel.ends[1], Clock::now() + 30s, error);
        REQUIRE_MESSAGE(message, error);
        if (message->kind == restart::MessageKind::End) break;
        REQUIRE(message->kind == restart::MessageKind::Module);
        const auto state = restart::decode_module_state(message->body);
        REQUIRE(state);
        CHECK(new_hub.import_handover(state->first, state->second));
        ++imported;
    }
    sender.join();
    CHECK_MESSAGE(sent, send_error);
    CHECK(imported == 2);
    REQUIRE(first_seen->imported.size() == 1);
    CHECK(first_seen->imported[0] == small);
    REQUIRE(second_seen->imported.size() == 1);
    CHECK(second_seen->imported[0].size() == large.size());
    CHECK(second_seen->imported[0] == large);
    CHECK(nothing_seen->imported.empty());  // "never called when there was nothing"
    CHECK_FALSE(new_hub.import_handover("gone-in-this-version", "x"));  // dropped, with a warning
}

TEST_CASE("a channel that closes, stays silent, or sends garbage is told apart") {
    SUBCASE("closed") {
        Channel channel;
        channel.close_end(0);
        std::string error;
        CHECK_FALSE(restart::receive_message(channel.ends[1], Clock::now() + 5s, error));
        CHECK(error == "closed");
    }
    SUBCASE("closed in the middle of a message") {
        Channel channel;
        const char partial[] = {0, 0, 0, 10, 2, 'a', 'b'};
        REQUIRE(::write(channel.ends[0], partial, sizeof partial) == static_cast<ssize_t>(sizeof partial));
        channel.close_end(0);
        std::string error;
        CHECK_FALSE(restart::receive_message(channel.ends[1], Clock::now() + 5s, error));
        CHECK(error == "closed");
    }
    SUBCASE("silent until the deadline") {
        Channel channel;
        std::string error;
        const auto started = Clock::now();
        CHECK_FALSE(restart::receive_message(channel.ends[1], started + 150ms, error));
        CHECK(error == "timed out");
        CHECK(Clock::now() - started >= 140ms);
    }
    SUBCASE("an unknown kind, or a zero length") {
        for (const auto& bytes : {std::string("\0\0\0\1\x63", 5), std::string("\0\0\0\0\1", 5)}) {
            Channel channel;
            REQUIRE(::write(channel.ends[0], bytes.data(), bytes.size()) == 5);
            std::string error;
            CHECK_FALSE(restart::receive_message(channel.ends[1], Clock::now() + 5s, error));
            CHECK_FALSE(error.empty());
        }
    }
    SUBCASE("a module state without its name") {
        CHECK_FALSE(restart::decode_module_state(std::string("\0\x09" "abc", 5)));
        CHECK(restart::decode_module_state(restart::encode_module_state("m", "")) == std::make_pair(std::string("m"), std::string()));
    }
}

TEST_CASE("the pidfile is written whole and removed only by the process it names") {
    char dir_template[] = "/tmp/websock-pidfile-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string path = std::string(dir_template) + "/hub.pid";
    std::string error;
    REQUIRE(restart::write_pidfile(path, 4242, error));
    CHECK(restart::read_pidfile(path) == 4242);
    REQUIRE(restart::write_pidfile(path, 4343, error));  // a successor rewrites it
    CHECK(restart::read_pidfile(path) == 4343);
    restart::remove_pidfile_if_ours(path, 4242);  // the predecessor leaves it alone
    CHECK(restart::read_pidfile(path) == 4343);
    restart::remove_pidfile_if_ours(path, 4343);
    CHECK_FALSE(restart::read_pidfile(path));
    CHECK_FALSE(restart::write_pidfile(std::string(dir_template) + "/no/such/dir/hub.pid", 1, error));
    CHECK(error.find("No such file") != std::string::npos);
    ::rmdir(dir_template);
}

TEST_CASE("freeze_for_handover returns at once when nothing is inside a module; thaw undoes it") {
    hub::Hub hub{hub::HubOptions{}};
    CHECK(hub.freeze_for_handover(1s));  // nobody inside a module: at once
    CHECK(hub.frozen());
    hub.thaw();
    CHECK_FALSE(hub.frozen());
}
