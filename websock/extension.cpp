#include "websock/extension.hpp"

namespace websock {
namespace {

class DeflateExtension final : public Extension {
public:
    DeflateExtension(codec::Role role, const codec::DeflateAgreement& agreement, const codec::DeflateOptions& options)
        : deflate_(role, agreement, options) {}

    std::string_view name() const noexcept override { return codec::kPermessageDeflate; }
    std::uint8_t rsv_bits() const noexcept override { return codec::kRsv1; }  // RFC 7692 section 6
    bool encode(std::string_view message, std::string& out) override { return deflate_.compress(message, out); }
    ExtensionStatus decode(std::string_view piece, bool final, std::string& out, std::size_t max_output) override {
        switch (deflate_.decompress(piece, final, out, max_output)) {
            case codec::InflateStatus::Ok: return ExtensionStatus::Ok;
            case codec::InflateStatus::TooBig: return ExtensionStatus::TooBig;
            case codec::InflateStatus::Corrupt: return ExtensionStatus::Invalid;
        }
        return ExtensionStatus::Invalid;
    }

private:
    codec::PerMessageDeflate deflate_;  // each direction allocates only its half of zlib
};

class DeflateFactory final : public ExtensionFactory {
public:
    explicit DeflateFactory(codec::DeflateOptions options) : options_(options) {}
    std::string_view name() const noexcept override { return codec::kPermessageDeflate; }
    std::optional<NegotiatedExtension> negotiate(const std::vector<codec::ExtensionOffer>& offers) override {
        auto agreement = codec::negotiate_server(offers, options_);
        if (!agreement) return std::nullopt;
        NegotiatedExtension result;
        result.response_element = agreement->response_header();
        result.incoming = make_permessage_deflate(codec::Role::Server, *agreement, options_);
        result.outgoing = make_permessage_deflate(codec::Role::Server, *agreement, options_);
        return result;
    }

private:
    codec::DeflateOptions options_;
};

}  // namespace

std::shared_ptr<ExtensionFactory> permessage_deflate(codec::DeflateOptions options) {
    options.enabled = true;
    return std::make_shared<DeflateFactory>(options);
}

std::unique_ptr<Extension> make_permessage_deflate(codec::Role role, const codec::DeflateAgreement& agreement,
                                                   const codec::DeflateOptions& options) {
    return std::make_unique<DeflateExtension>(role, agreement, options);
}

}  // namespace websock
