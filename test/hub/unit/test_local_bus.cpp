// LocalBus's sequenced streams and the sequenced envelope: offsets in the handler's order,
// the three history limits, epochs, read_history, export/import across a "restart", and
// decoders fed every truncation and some mutations of valid input.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hub/bus.hpp"

using namespace std::chrono_literals;

namespace {

hub::SequencedMessage sample_message() {
    hub::SequencedMessage message;
    message.stream = "channel:room";
    message.epoch = "0123456789abcdef";
    message.offset = 42;
    message.unix_ms = 1'765'000'000'123;
    message.payload = std::string("{\"x\":1}\0\xff binary", 17);
    return message;
}

/// Every sequenced message the handler saw, decoded, in order.
struct Seen {
    std::mutex mutex;
    std::vector<std::pair<std::string, hub::SequencedMessage>> messages;  // topic, message
    std::vector<std::pair<std::string, std::string>> plain;

    hub::Bus::Handler handler() {
        return [this](std::string_view topic, std::string_view payload) {
            std::lock_guard lock(mutex);
            if (auto message = hub::decode_sequenced(payload)) messages.emplace_back(std::string(topic), std::move(*message));
            else plain.emplace_back(std::string(topic), std::string(payload));
        };
    }
};

hub::HistoryRead read_now(hub::Bus& bus, const std::string& stream, std::uint64_t after, std::size_t max = 1000) {
    hub::HistoryRead result;
    bool answered = false;
    bus.read_history(stream, after, max, [&](hub::HistoryRead read) {
        result = std::move(read);
        answered = true;
    });
    REQUIRE(answered);  // LocalBus answers at once, on this thread
    return result;
}

hub::SequencedMessage publish_now(hub::Bus& bus, const std::string& stream, const std::string& payload) {
    hub::SequencedMessage accepted;
    bool ok = false;
    bool answered = false;
    bus.publish_sequenced("streams:" + stream, stream, payload, [&](bool success, std::string_view, const hub::SequencedMessage& message) {
        ok = success;
        accepted = message;
        answered = true;
    });
    REQUIRE(answered);
    REQUIRE(ok);
    return accepted;
}

/// FNV-1a, as LocalBus's export uses for its checksum: lets a test damage the body of an
/// export and still pass the checksum, to reach the parser.
std::uint64_t fnv1a(std::string_view bytes) {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (char c : bytes) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ull;
    }
    return hash;
}

std::string with_checksum(std::string body) {
    const std::uint64_t sum = fnv1a(body);
    for (int i = 0; i < 8; ++i) body.push_back(static_cast<char>((sum >> (8 * i)) & 0xff));
    return body;
}

}  // namespace

TEST_CASE("sequenced envelope: round trip; plain payloads are not envelopes") {
    const hub::SequencedMessage message = sample_message();
    const std::string bytes = hub::encode_sequenced(message);
    const auto decoded = hub::decode_sequenced(bytes);
    REQUIRE(decoded);
    CHECK(decoded->stream == message.stream);
    CHECK(decoded->epoch == message.epoch);
    CHECK(decoded->offset == 42);
    CHECK(decoded->unix_ms == message.unix_ms);
    CHECK(decoded->payload == message.payload);

    hub::SequencedMessage empty_payload = message;
    empty_payload.payload.clear();
    CHECK(hub::decode_sequenced(hub::encode_sequenced(empty_payload))->payload.empty());

    for (std::string_view plain : {std::string_view(""), std::string_view("hello"), std::string_view("{\"offset\":1}"),
                                   std::string_view("\0", 1), std::string_view("\0wsq", 4)}) {
        CHECK_FALSE(hub::decode_sequenced(plain));
    }
    hub::SequencedMessage bad = message;
    bad.epoch = "has space";
    CHECK_THROWS(hub::encode_sequenced(bad));
    bad = message;
    bad.stream = std::string(1025, 's');
    CHECK_THROWS(hub::encode_sequenced(bad));
}

TEST_CASE("sequenced envelope: every truncation and mutations are refused or decoded within bounds") {
    const std::string bytes = hub::encode_sequenced(sample_message());
    for (std::size_t length = 0; length < bytes.size(); ++length) {
        CAPTURE(length);
        // A copy of exactly `length` bytes, so that ASan sees any read past it.
        const std::string truncated = bytes.substr(0, length);
        CHECK_FALSE(hub::decode_sequenced(truncated));
    }
    CHECK_FALSE(hub::decode_sequenced(bytes + "x"));  // trailing byte: the payload length disagrees
    int decoded_mutations = 0;
    for (std::size_t position = 0; position < bytes.size(); ++position) {
        for (int bit : {0, 7}) {
            std::string mutated = bytes;
            mutated[position] = static_cast<char>(mutated[position] ^ (1 << bit));
            const auto result = hub::decode_sequenced(mutated);
            if (result) {
                ++decoded_mutations;
                CHECK(result->payload.size() <= mutated.size());
            }
        }
    }
    // Flips in the epoch, offset, time and payload still decode; flips in the framing do not.
    CHECK(decoded_mutations > 0);
    CHECK(decoded_mutations < static_cast<int>(2 * bytes.size()));
}

TEST_CASE("local bus sequenced: offsets 1..N in the handler's order, one epoch, Done after the handler") {
    hub::LocalBus bus;
    Seen seen;
    bus.start(seen.handler());

    bool seen_before_done = true;
    for (int i = 0; i < 5; ++i) {
        bus.publish_sequenced("streams:a", "a", "m" + std::to_string(i), [&](bool ok, std::string_view, const hub::SequencedMessage& accepted) {
            CHECK(ok);
            std::lock_guard lock(seen.mutex);
            seen_before_done = seen_before_done && !seen.messages.empty() && seen.messages.back().second.offset == accepted.offset;
            CHECK(accepted.payload.empty());
            CHECK(accepted.stream == "a");
        });
    }
    CHECK(seen_before_done);
    publish_now(bus, "b", "other");
    bus.publish("plain:topic", "plain", [](bool ok, std::string_view) { CHECK(ok); });

    std::lock_guard lock(seen.mutex);
    REQUIRE(seen.messages.size() == 6);
    REQUIRE(seen.plain.size() == 1);
    const std::string epoch_a = seen.messages[0].second.epoch;
    CHECK(epoch_a.size() == 16);
    CHECK(epoch_a.find_first_not_of("0123456789abcdef") == std::string::npos);
    for (int i = 0; i < 5; ++i) {
        CHECK(seen.messages[i].first == "streams:a");
        CHECK(seen.messages[i].second.offset == static_cast<std::uint64_t>(i + 1));
        CHECK(seen.messages[i].second.epoch == epoch_a);
        CHECK(seen.messages[i].second.payload == "m" + std::to_string(i));
    }
    CHECK(seen.messages[5].second.offset == 1);
    CHECK(seen.messages[5].second.epoch != epoch_a);  // each stream its own history
}

TEST_CASE("local bus sequenced: concurrent publishers, every stream strictly increasing without gaps") {
    hub::LocalBus bus;
    Seen seen;
    bus.start(seen.handler());
    constexpr int threads = 4;
    constexpr int per_thread = 500;
    std::atomic<int> accepted{0};
    std::vector<std::thread> publishers;
    for (int t = 0; t < threads; ++t) {
        publishers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                const std::string stream = (i % 2 == 0) ? "even" : "odd";
                bus.publish_sequenced("s", stream, std::to_string(t) + ":" + std::to_string(i),
                                      [&](bool ok, std::string_view, const hub::SequencedMessage&) {
                                          if (ok) ++accepted;
                                      });
                if (i % 50 == 0) read_now(bus, stream, 0, 10);  // readers alongside writers
            }
        });
    }
    for (auto& publisher : publishers) publisher.join();
    CHECK(accepted == threads * per_thread);
    std::map<std::string, std::uint64_t> last;
    std::lock_guard lock(seen.mutex);
    REQUIRE(seen.messages.size() == threads * per_thread);
    for (const auto& [topic, message] : seen.messages) {
        CHECK(message.offset == last[message.stream] + 1);
        last[message.stream] = message.offset;
    }
    CHECK(last["even"] == threads * per_thread / 2);
    CHECK(last["odd"] == threads * per_thread / 2);
}

TEST_CASE("local bus sequenced: read_history bounds, max_messages and the entry and byte limits") {
    hub::LocalBus bus;
    hub::HistoryLimits limits;
    limits.max_entries = 10;
    limits.max_bytes = 1000;
    bus.set_history_limits(limits);
    bus.start([](std::string_view, std::string_view) {});

    hub::HistoryRead none = read_now(bus, "never", 0);
    CHECK(none.ok);
    CHECK(none.epoch.empty());
    CHECK(none.last_offset == 0);
    CHECK(none.oldest_offset == 0);
    CHECK(none.messages.empty());

    for (int i = 1; i <= 25; ++i) publish_now(bus, "s", "m" + std::to_string(i));
    hub::HistoryRead read = read_now(bus, "s", 0);
    CHECK(read.ok);
    CHECK(read.last_offset == 25);
    CHECK(read.oldest_offset == 16);  // 10 entries kept
    REQUIRE(read.messages.size() == 10);
    CHECK(read.messages.front().offset == 16);
    CHECK(read.messages.front().payload == "m16");
    CHECK(read.messages.back().offset == 25);
    CHECK(read.messages.front().stream == "s");
    CHECK(read.messages.front().epoch == read.epoch);

    read = read_now(bus, "s", 20, 3);
    REQUIRE(read.messages.size() == 3);
    CHECK(read.messages[0].offset == 21);
    CHECK(read.messages[2].offset == 23);
    CHECK(read_now(bus, "s", 25).messages.empty());
    CHECK(read_now(bus, "s", 99).messages.empty());
    CHECK(read_now(bus, "s", 0, 0).messages.empty());

    // Bytes: 400-byte payloads, at most 1000 bytes kept: two of them.
    for (int i = 0; i < 3; ++i) publish_now(bus, "big", std::string(400, 'a' + i));
    read = read_now(bus, "big", 0);
    REQUIRE(read.messages.size() == 2);
    CHECK(read.oldest_offset == 2);
    CHECK(read.messages[0].payload == std::string(400, 'b'));
    // One larger than the limit: delivered, and the history is empty (no gap is ever kept).
    const auto huge = publish_now(bus, "big", std::string(1001, 'z'));
    CHECK(huge.offset == 4);
    read = read_now(bus, "big", 0);
    CHECK(read.messages.empty());
    CHECK(read.oldest_offset == 0);
    CHECK(read.last_offset == 4);
    publish_now(bus, "big", "small");
    read = read_now(bus, "big", 0);
    REQUIRE(read.messages.size() == 1);
    CHECK(read.oldest_offset == 5);

    bool refused = false;
    bus.publish_sequenced("t", std::string("a\0b", 3), "x", [&](bool ok, std::string_view error, const hub::SequencedMessage&) {
        refused = !ok && !error.empty();
    });
    CHECK(refused);
}

TEST_CASE("local bus sequenced: messages older than max_age are gone, the offsets go on") {
    hub::LocalBus bus;
    hub::HistoryLimits limits;
    limits.max_age = 50ms;
    bus.set_history_limits(limits);
    bus.start([](std::string_view, std::string_view) {});
    publish_now(bus, "s", "old1");
    publish_now(bus, "s", "old2");
    const std::string epoch = read_now(bus, "s", 0).epoch;
    CHECK(read_now(bus, "s", 0).messages.size() == 2);
    // Wait (bounded) until both are past max_age on the wall clock.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!read_now(bus, "s", 0).messages.empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    hub::HistoryRead read = read_now(bus, "s", 0);
    CHECK(read.messages.empty());
    CHECK(read.oldest_offset == 0);
    CHECK(read.last_offset == 2);
    CHECK(read.epoch == epoch);
    CHECK(publish_now(bus, "s", "new").offset == 3);
    read = read_now(bus, "s", 0);
    REQUIRE(read.messages.size() == 1);
    CHECK(read.oldest_offset == 3);
    CHECK(read.epoch == epoch);
}

TEST_CASE("local bus sequenced: a new bus has new epochs; export/import keeps epochs and offsets") {
    hub::LocalBus first;
    first.start([](std::string_view, std::string_view) {});
    for (int i = 1; i <= 3; ++i) publish_now(first, "room", "r" + std::to_string(i));
    publish_now(first, std::string("bin\xff\x01", 5), std::string("\0\1\2", 3));
    const std::string epoch = read_now(first, "room", 0).epoch;

    hub::LocalBus fresh;  // a restart without handover: the history is lost, the epoch changes
    fresh.start([](std::string_view, std::string_view) {});
    CHECK(publish_now(fresh, "room", "x").epoch != epoch);

    const std::string state = first.export_histories();
    hub::LocalBus second;
    CHECK(second.try_import_histories(state).empty());
    Seen seen;
    second.start(seen.handler());
    hub::HistoryRead read = read_now(second, "room", 0);
    CHECK(read.epoch == epoch);
    CHECK(read.last_offset == 3);
    REQUIRE(read.messages.size() == 3);
    CHECK(read.messages[1].payload == "r2");
    const auto next = publish_now(second, "room", "r4");
    CHECK(next.epoch == epoch);
    CHECK(next.offset == 4);
    read = read_now(second, std::string("bin\xff\x01", 5), 0);
    REQUIRE(read.messages.size() == 1);
    CHECK(read.messages[0].payload == std::string("\0\1\2", 3));
    // An export of the new bus round-trips to the same bytes (nothing lost or reordered).
    hub::LocalBus third;
    CHECK(third.try_import_histories(second.export_histories()).empty());
    CHECK(third.export_histories() == second.export_histories());

    // Streams the importer has already keep their own history.
    hub::LocalBus busy;
    busy.start([](std::string_view, std::string_view) {});
    const auto own = publish_now(busy, "room", "mine");
    CHECK(busy.try_import_histories(state).empty());
    CHECK(read_now(busy, "room", 0).epoch == own.epoch);
    CHECK(read_now(busy, "room", 0).last_offset == 1);

    // An empty bus exports something importable too.
    hub::LocalBus empty;
    CHECK(hub::LocalBus().try_import_histories(empty.export_histories()).empty());
}

TEST_CASE("local bus sequenced: import refuses every truncation and damaged bodies, and changes nothing") {
    hub::LocalBus source;
    source.start([](std::string_view, std::string_view) {});
    for (int i = 1; i <= 3; ++i) publish_now(source, "a", "payload " + std::to_string(i));
    publish_now(source, "b", "");
    const std::string state = source.export_histories();
    const std::string body = state.substr(0, state.size() - 8);

    auto refused_and_untouched = [](std::string_view input) {
        hub::LocalBus target;
        const std::string error = target.try_import_histories(std::string(input));
        target.import_histories(std::string(input));  // the plain form must be as safe
        const bool untouched = target.export_histories() == hub::LocalBus().export_histories();
        return !error.empty() && untouched;
    };
    for (std::size_t length = 0; length < state.size(); ++length) {
        CAPTURE(length);
        CHECK(refused_and_untouched(state.substr(0, length)));
    }
    // Past the checksum, to the parser: every truncation of the body, with a checksum that fits.
    for (std::size_t length = 0; length < body.size(); ++length) {
        CAPTURE(length);
        CHECK(refused_and_untouched(with_checksum(body.substr(0, length))));
    }
    CHECK(refused_and_untouched(with_checksum(body + "x")));
    CHECK(refused_and_untouched("garbage"));
    CHECK(refused_and_untouched(std::string(64, '\0')));
    std::string flipped = state;
    flipped[flipped.size() / 2] ^= 0x01;
    CHECK(refused_and_untouched(flipped));
    // Mutations of the framing (checksum fixed up) are refused or give a state that imports
    // cleanly; none may crash or read out of bounds (ASan watches).
    int refused = 0;
    for (std::size_t position = 0; position < body.size(); ++position) {
        std::string mutated = body;
        mutated[position] = static_cast<char>(mutated[position] ^ 0x80);
        hub::LocalBus target;
        if (!target.try_import_histories(with_checksum(mutated)).empty()) ++refused;
    }
    CHECK(refused > 0);
}

TEST_CASE("local bus sequenced: read_history from inside the handler answers (no deadlock) and sees the message") {
    hub::LocalBus bus;
    std::vector<std::uint64_t> seen_in_handler;
    bus.start([&](std::string_view, std::string_view payload) {
        const auto message = hub::decode_sequenced(payload);
        REQUIRE(message);
        bus.read_history(message->stream, message->offset - 1, 10, [&](hub::HistoryRead read) {
            REQUIRE(read.messages.size() == 1);
            seen_in_handler.push_back(read.messages[0].offset);
        });
    });
    publish_now(bus, "s", "one");
    publish_now(bus, "s", "two");
    CHECK(seen_in_handler == std::vector<std::uint64_t>{1, 2});
}
