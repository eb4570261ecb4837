// The streams module's handover for a zero-downtime restart: what export_handover() gives in
// the old process, import_handover() takes in the new one, so that resume works across the
// restart without Redis (the same epochs, offsets and history).
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "hub/bus.hpp"
#include "hub/streams/module.hpp"
#include "hub/streams/protocol.hpp"

namespace {

hub::SequencedMessage publish(hub::Bus& bus, const std::string& stream, const std::string& text) {
    hub::SequencedMessage accepted;
    bool ok = false;
    bus.publish_sequenced(std::string(hub::StreamsModule::kTopic), stream,
                          hub::streams::encode_payload(hub::streams::Format::Text, text),
                          [&](bool done_ok, std::string_view, const hub::SequencedMessage& message) {
                              ok = done_ok;
                              accepted = message;
                          });
    REQUIRE(ok);  // LocalBus answers at once
    return accepted;
}

hub::HistoryRead history(hub::Bus& bus, const std::string& stream) {
    std::optional<hub::HistoryRead> read;
    bus.read_history(stream, 0, 100, [&](hub::HistoryRead r) { read = std::move(r); });
    REQUIRE(read);
    return *read;
}

}  // namespace

TEST_CASE("streams module: the handover carries every stream's epoch, offsets and history to the next process") {
    hub::LocalBus old_bus;
    old_bus.start([](std::string_view, std::string_view) {});
    hub::StreamsModule old_module(hub::StreamsOptions{});
    old_module.start(hub::ModuleContext{&old_bus, nullptr, nullptr});
    publish(old_bus, "news", "one");
    const auto second = publish(old_bus, "news", "two");
    publish(old_bus, "other", "x");
    const std::string state = old_module.export_handover();
    REQUIRE_FALSE(state.empty());

    hub::LocalBus new_bus;
    new_bus.start([](std::string_view, std::string_view) {});
    hub::StreamsModule new_module(hub::StreamsOptions{});
    new_module.start(hub::ModuleContext{&new_bus, nullptr, nullptr});
    new_module.import_handover(state);
    const hub::HistoryRead read = history(new_bus, "news");
    CHECK(read.ok);
    CHECK(read.epoch == second.epoch);
    CHECK(read.last_offset == 2);
    REQUIRE(read.messages.size() == 2);
    CHECK(hub::streams::decode_payload(read.messages[1].payload)->data == "two");
    CHECK(history(new_bus, "other").last_offset == 1);
    // The next publish continues the same history.
    const auto third = publish(new_bus, "news", "three");
    CHECK(third.epoch == second.epoch);
    CHECK(third.offset == 3);
    old_bus.stop();
    new_bus.stop();
}

TEST_CASE("streams module: a damaged or foreign handover is refused whole; the streams start afresh") {
    hub::LocalBus old_bus;
    old_bus.start([](std::string_view, std::string_view) {});
    hub::StreamsModule old_module(hub::StreamsOptions{});
    old_module.start(hub::ModuleContext{&old_bus, nullptr, nullptr});
    publish(old_bus, "news", "one");
    std::string state = old_module.export_handover();
    REQUIRE(state.size() > 30);

    for (const std::string& bad : {std::string("not a handover"), state.substr(0, state.size() - 3),
                                   std::string(state).replace(state.size() - 12, 1, "\x7f")}) {
        hub::LocalBus new_bus;
        new_bus.start([](std::string_view, std::string_view) {});
        hub::StreamsModule new_module(hub::StreamsOptions{});
        new_module.start(hub::ModuleContext{&new_bus, nullptr, nullptr});
        new_module.import_handover(bad);
        const hub::HistoryRead read = history(new_bus, "news");
        CHECK(read.last_offset == 0);
        CHECK(read.epoch.empty());
        new_bus.stop();
    }
    old_bus.stop();
}
