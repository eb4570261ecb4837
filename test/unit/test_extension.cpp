// The extension API (websock/extension.hpp) with a toy extension that reverses each message
// and claims RSV2: Connection decodes marked messages, leaves unmarked ones alone, encodes
// what it sends, and refuses the RSV bits on a continuation frame. Also: the deflate factory
// negotiates through the same interface.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "websock/connection.hpp"
#include "websock/extension.hpp"

using namespace websock;
using codec::Opcode;

namespace {

class Reverse final : public Extension {
public:
    std::string_view name() const noexcept override { return "x-reverse"; }
    std::uint8_t rsv_bits() const noexcept override { return codec::kRsv2; }
    bool encode(std::string_view message, std::string& out) override {
        if (message.size() < 2) return false;  // too short to bother
        out.append(message.rbegin(), message.rend());
        return true;
    }
    ExtensionStatus decode(std::string_view piece, bool final, std::string& out, std::size_t max_output) override {
        pending_.append(piece);
        if (pending_.size() > max_output) return ExtensionStatus::TooBig;
        if (!final) return ExtensionStatus::Ok;
        out.append(pending_.rbegin(), pending_.rend());
        pending_.clear();
        return ExtensionStatus::Ok;
    }

private:
    std::string pending_;
};

struct Recorder final : ConnectionHandler {
    std::vector<std::string> messages;
    void on_message(std::string_view data, MessageType) override { messages.emplace_back(data); }
};

std::string client_frame(Opcode opcode, bool fin, std::string_view payload, std::uint8_t rsv) {
    std::string out;
    const std::uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    codec::append_frame(out, opcode, fin, payload, mask, rsv);
    return out;
}

}  // namespace

TEST_CASE("extension API: a toy extension through Connection") {
    Connection connection({});
    connection.set_extension(std::make_unique<Reverse>(), std::make_unique<Reverse>());
    Recorder recorder;
    SUBCASE("a marked message is decoded, across fragments") {
        std::string input = client_frame(Opcode::Text, false, "ol", codec::kRsv2) + client_frame(Opcode::Continuation, true, "leh", 0);
        connection.feed(input, recorder);
        REQUIRE(recorder.messages.size() == 1);
        CHECK(recorder.messages[0] == "hello");
    }
    SUBCASE("an unmarked message is left alone") {
        std::string input = client_frame(Opcode::Text, true, "plain", 0);
        connection.feed(input, recorder);
        REQUIRE(recorder.messages.size() == 1);
        CHECK(recorder.messages[0] == "plain");
    }
    SUBCASE("the RSV bits on a continuation frame are a protocol error") {
        std::string input = client_frame(Opcode::Text, false, "a", codec::kRsv2) + client_frame(Opcode::Continuation, true, "b", codec::kRsv2);
        connection.feed(input, recorder);
        CHECK(connection.failed());
        CHECK(connection.close_code() == CloseCode::ProtocolError);
    }
    SUBCASE("RSV bits the extension did not claim are still refused") {
        std::string input = client_frame(Opcode::Text, true, "x", codec::kRsv1);
        connection.feed(input, recorder);
        CHECK(connection.close_code() == CloseCode::ProtocolError);
    }
    SUBCASE("sending encodes and marks the first frame") {
        REQUIRE(connection.send_message("abc", MessageType::Text));
        const std::string& out = connection.output();
        REQUIRE(out.size() == 2 + 3);
        CHECK((static_cast<std::uint8_t>(out[0]) & codec::kRsv2) != 0);
        CHECK(out.substr(2) == "cba");
    }
}

TEST_CASE("extension API: permessage-deflate negotiates through the factory") {
    auto factory = permessage_deflate({});
    CHECK(factory->name() == "permessage-deflate");
    const auto offers = codec::parse_extensions("x-other, permessage-deflate; client_max_window_bits");
    REQUIRE(offers.ok());
    auto agreed = factory->negotiate(offers.offers);
    REQUIRE(agreed);
    CHECK(agreed->response_element.starts_with("permessage-deflate"));
    REQUIRE(agreed->incoming);
    REQUIRE(agreed->outgoing);
    CHECK(agreed->outgoing->rsv_bits() == codec::kRsv1);
    std::string compressed;
    REQUIRE(agreed->outgoing->encode(std::string(1000, 'a'), compressed));
    CHECK(compressed.size() < 100);
    const auto none = codec::parse_extensions("x-other");
    CHECK_FALSE(factory->negotiate(none.offers));
}
