// websock-hub's --stream-... flags and HUB_STREAM_* variables: taken out of the arguments,
// a flag wins over its variable, bad values refused without echoing them.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "hub/streams/flags.hpp"

using hub::StreamsOptions;
using hub::streams::take_flags;

namespace {

auto env_of(std::map<std::string, std::string> values) {
    return [values = std::move(values)](const char* name) -> const char* {
        const auto it = values.find(name);
        return it == values.end() ? nullptr : it->second.c_str();
    };
}

}  // namespace

TEST_CASE("stream flags: defaults, flags taken out of the arguments, the rest kept in order") {
    StreamsOptions options;
    CHECK(options.history.max_entries == 10'000);
    CHECK(options.ack_window_messages == StreamsOptions::kDefaultAckWindowMessages);
    std::vector<std::string> args{"--port", "0", "--stream-history-messages", "5", "--stream-history-bytes=4096",
                                  "--threads", "--stream-history-seconds", "30", "--stream-ack-window=7",
                                  "--stream-ack-window-bytes", "2048"};
    CHECK_FALSE(take_flags(args, options, env_of({})));
    CHECK(args == std::vector<std::string>{"--port", "0", "--threads"});
    CHECK(options.history.max_entries == 5);
    CHECK(options.history.max_bytes == 4096);
    CHECK(options.history.max_age == std::chrono::seconds(30));
    CHECK(options.ack_window_messages == 7);
    CHECK(options.ack_window_bytes == 2048);
}

TEST_CASE("stream flags: variables, and a flag wins over its variable") {
    StreamsOptions options;
    std::vector<std::string> args{"--stream-ack-window", "9"};
    CHECK_FALSE(take_flags(args, options, env_of({{"HUB_STREAM_ACK_WINDOW", "3"}, {"HUB_STREAM_HISTORY_MESSAGES", "12"},
                                                  {"HUB_STREAM_HISTORY_SECONDS", ""}})));
    CHECK(options.ack_window_messages == 9);
    CHECK(options.history.max_entries == 12);
    CHECK(options.history.max_age == std::chrono::seconds(600));  // an empty variable is unset
    CHECK(args.empty());
}

TEST_CASE("stream flags: bad values are refused, naming the flag but not the value") {
    const std::vector<std::vector<std::string>> bad{
        {"--stream-ack-window"},       {"--stream-ack-window", "0"},         {"--stream-ack-window", "-1"},
        {"--stream-ack-window", "1x"}, {"--stream-history-bytes", "1023"},   {"--stream-history-messages="},
        {"--stream-history-seconds", "99999999999"}, {"--stream-ack-window", "secret-ish"},
    };
    for (auto args : bad) {
        CAPTURE(args);
        StreamsOptions options;
        const auto error = take_flags(args, options, env_of({}));
        REQUIRE(error);
        CHECK(error->find("--stream-") == 0);
        CHECK(error->find("secret-ish") == std::string::npos);
    }
    StreamsOptions options;
    std::vector<std::string> none;
    const auto error = take_flags(none, options, env_of({{"HUB_STREAM_HISTORY_BYTES", "lots"}}));
    REQUIRE(error);
    CHECK(error->find("HUB_STREAM_HISTORY_BYTES") != std::string::npos);
    CHECK(error->find("lots") == std::string::npos);
}
